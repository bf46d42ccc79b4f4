defmodule ElixirScope.Foundation.Env do
  @moduledoc """
  The application environment the foundation reads, under two app names.

  The preferred form is `config :elixir_scope_foundation, ...` (this
  library's own OTP app, so Mix does not warn about it). Drop-in hosts keep
  their `config :elixir_scope, ...` files unchanged. The two forms take the
  same keys (`:test_mode`, `:debug_registry`, `:ai`, `:capture`, `:storage`,
  `:interface`, `:dev`).

  Precedence, per top-level key: a key set under `:elixir_scope_foundation`
  wins; else the key under `:elixir_scope`; else the default. A section such
  as `:ai` is taken whole from the app that wins; the two apps' sections are
  not merged.

      iex> Application.put_env(:elixir_scope_foundation, :doc_example, :ours)
      iex> Application.put_env(:elixir_scope, :doc_example, :legacy)
      iex> ElixirScope.Foundation.Env.get(:doc_example)
      :ours
      iex> Application.delete_env(:elixir_scope_foundation, :doc_example)
      iex> ElixirScope.Foundation.Env.get(:doc_example)
      :legacy
      iex> Application.delete_env(:elixir_scope, :doc_example)
      iex> ElixirScope.Foundation.Env.get(:doc_example, :default)
      :default
  """

  alias ElixirScope.Foundation.Logic.ConfigLogic
  alias ElixirScope.Foundation.Types.Config
  alias ElixirScope.Foundation.Validation.ConfigValidator

  @app :elixir_scope_foundation
  @legacy :elixir_scope

  @typedoc "The app a key was read from."
  @type source :: :elixir_scope_foundation | :elixir_scope

  @doc "The value of `key`: from `:elixir_scope_foundation`, else `:elixir_scope`, else `default`."
  @spec get(atom(), term()) :: term()
  def get(key, default \\ nil) when is_atom(key) do
    case fetch(key) do
      {:ok, value, _source} -> value
      :error -> default
    end
  end

  @doc "`{:ok, value, app}` for the app `key` is read from, or `:error` when neither sets it."
  @spec fetch(atom()) :: {:ok, term(), source()} | :error
  def fetch(key) when is_atom(key) do
    case Application.fetch_env(@app, key) do
      {:ok, value} ->
        {:ok, value, @app}

      :error ->
        case Application.fetch_env(@legacy, key) do
          {:ok, value} -> {:ok, value, @legacy}
          :error -> :error
        end
    end
  end

  @doc "Every key of both apps, each with the value `get/2` returns for it."
  @spec all() :: keyword()
  def all do
    Keyword.merge(Application.get_all_env(@legacy), Application.get_all_env(@app))
  end

  @doc """
  Checks the configuration sections in the environment the way the config
  server will at start, and names the first offending key:
  `{:error, "invalid :elixir_scope config at [:ai, :planning, :sampling_rate]: 7 (...)"}`.
  """
  @spec check_config() :: :ok | {:error, String.t()}
  def check_config do
    config = ConfigLogic.merge_env_config(Config.new(), all())

    case safe_validate(config) do
      :ok -> :ok
      {:error, reason} -> {:error, describe_invalid(reason)}
    end
  end

  defp describe_invalid(reason) do
    defaults = Config.new()

    found =
      defaults
      |> Map.from_struct()
      |> Map.keys()
      |> Enum.flat_map(fn key ->
        case fetch(key) do
          {:ok, value, source} -> leaves([key], value, Map.get(defaults, key), source)
          :error -> []
        end
      end)
      |> Enum.find_value(&leaf_error/1)

    found || "invalid foundation config: #{reason}"
  end

  # The configured leaves under `path`: where the default is a section (map)
  # and the configured value is a keyword list or map, descend.
  defp leaves(path, value, default, source) when is_map(default) and not is_struct(default) do
    pairs =
      cond do
        is_map(value) and not is_struct(value) -> Map.to_list(value)
        is_list(value) and value != [] and Keyword.keyword?(value) -> value
        true -> nil
      end

    case pairs do
      nil ->
        [{path, value, source}]

      pairs ->
        Enum.flat_map(pairs, fn {key, sub} ->
          leaves(path ++ [key], sub, Map.get(default, key), source)
        end)
    end
  end

  defp leaves(path, value, _default, source), do: [{path, value, source}]

  defp leaf_error({path, value, source}) do
    env = [{hd(path), nest(tl(path), value)}]

    case safe_validate(ConfigLogic.merge_env_config(Config.new(), env)) do
      :ok ->
        nil

      {:error, reason} ->
        "invalid #{inspect(source)} config at #{inspect(path)}: #{inspect(value)} (#{reason})"
    end
  end

  defp nest([], value), do: value
  defp nest([key | rest], value), do: [{key, nest(rest, value)}]

  defp safe_validate(config) do
    case ConfigValidator.validate(config) do
      :ok -> :ok
      {:error, %{message: message}} -> {:error, message}
    end
  rescue
    error -> {:error, "wrong shape: " <> Exception.message(error)}
  end
end
