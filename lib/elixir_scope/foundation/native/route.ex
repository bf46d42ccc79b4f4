defmodule ElixirScope.Foundation.Native.Route do
  @moduledoc false
  # Size-based scheduler routing, written once.
  #
  # A NIF on a normal scheduler must give the scheduler back quickly, so the
  # work whose cost grows with the input's size has two entry points: a
  # normal-scheduler NIF that does small inputs and answers `:dirty`, having
  # done nothing, when the input is over its budget (`NORMAL_BYTES` in
  # native/foundation_nif/src/budget.rs), and a `*_dirty` twin on a dirty CPU
  # scheduler that does the same work without a budget.
  #
  #   * dirty/2 takes the normal NIF's answer and calls the twin on `:dirty`;
  #   * fits/3 is the same choice for calls whose size check is separate
  #     from the work (a boolean NIF check, or a size read in Elixir);
  #   * normal_bytes/0 is the normal-scheduler byte budget, defined once in
  #     Rust; the application reads it from the NIF at start (load/0), and
  #     code running without the application asks the NIF.

  alias ElixirScope.Foundation.Native

  @doc false
  @spec dirty(result, (() -> twin)) :: result | twin when result: term(), twin: term()
  def dirty(:dirty, twin), do: twin.()
  def dirty(result, _twin), do: result

  @doc false
  @spec fits(boolean(), (() -> normal), (() -> twin)) :: normal | twin
        when normal: term(), twin: term()
  def fits(true, normal, _twin), do: normal.()
  def fits(false, _normal, twin), do: twin.()

  @key {__MODULE__, :normal_bytes}

  @doc false
  @spec normal_bytes() :: pos_integer()
  def normal_bytes do
    case :persistent_term.get(@key, nil) do
      nil -> read_normal_bytes()
      bytes -> bytes
    end
  end

  @doc false
  @spec load() :: :ok
  def load, do: :persistent_term.put(@key, read_normal_bytes())

  defp read_normal_bytes do
    %{normal_bytes: bytes} = Native.native_constants()
    bytes
  end
end
