defmodule ElixirScope.Foundation.Native do
  @moduledoc false
  # The only module that knows NIF names. Every stub body is exactly
  # `:erlang.nif_error(:not_loaded)`; the Rust library replaces them on load.

  @on_load :load_nif

  @doc false
  def load_nif do
    path = library_path()

    case :erlang.load_nif(String.to_charlist(path), 0) do
      :ok ->
        :ok

      {:error, {reason, text}} ->
        require Logger

        Logger.error("""
        ElixirScope.Foundation could not load its native library #{path}.so \
        (#{inspect(reason)}: #{text}).
        Build it with `mix compile` (needs Rust's cargo on the PATH), or run \
        `cargo build --release -p foundation_nif` in the elixir_scope_foundation \
        directory and recompile.
        """)

        {:error, reason}
    end
  end

  defp library_path do
    case :code.priv_dir(:elixir_scope_foundation) do
      {:error, _} -> Path.join(["priv", "native", "foundation_nif"])
      dir -> Path.join([List.to_string(dir), "native", "foundation_nif"])
    end
  end

  # info
  def native_version, do: :erlang.nif_error(:not_loaded)

  # validation
  def config_validate(_config), do: :erlang.nif_error(:not_loaded)
  def config_validate_section(_section, _value), do: :erlang.nif_error(:not_loaded)
  def event_validate(_event, _data_size), do: :erlang.nif_error(:not_loaded)
  def event_validate_required(_event), do: :erlang.nif_error(:not_loaded)
  def event_validate_types(_event), do: :erlang.nif_error(:not_loaded)
  def event_validate_data_size(_data_size), do: :erlang.nif_error(:not_loaded)
  def event_validate_type(_event_type), do: :erlang.nif_error(:not_loaded)
  def validation_constants, do: :erlang.nif_error(:not_loaded)
end
