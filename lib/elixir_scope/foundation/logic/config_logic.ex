defmodule ElixirScope.Foundation.Logic.ConfigLogic do
  @moduledoc """
  Pure configuration logic: which paths may change at
  run time, updating, reading by path, merging app env and options,
  building and diffing configurations.

  Errors are `%ElixirScope.Foundation.Types.Error{}` with `code: nil`, except
  the ones `ElixirScope.Foundation.Validation.ConfigValidator` returns
  (codes 1001-1004). Validation runs in Rust; the rest is map plumbing that
  stays in Elixir, where it is cheaper than a NIF round trip (see
  `bench/validation.exs` and `docs/benchmarks.md`).
  """

  require Logger

  alias ElixirScope.Foundation.Types.{Config, Error}
  alias ElixirScope.Foundation.Validation.ConfigValidator

  @updatable_paths [
    [:ai, :planning, :sampling_rate],
    [:ai, :planning, :performance_target],
    [:capture, :processing, :batch_size],
    [:capture, :processing, :flush_interval],
    [:interface, :query_timeout],
    [:interface, :max_results],
    [:dev, :debug_mode],
    [:dev, :verbose_logging],
    [:dev, :performance_monitoring]
  ]

  @typedoc "A path of atom keys into the config."
  @type config_path :: [atom()]

  @doc """
  The paths `update_config/3` accepts, in contract order.

      iex> hd(ElixirScope.Foundation.Logic.ConfigLogic.updatable_paths())
      [:ai, :planning, :sampling_rate]
  """
  @spec updatable_paths() :: [config_path()]
  def updatable_paths, do: @updatable_paths

  @doc "True when `path` is exactly one of `updatable_paths/0` (no prefixes)."
  @spec updatable_path?(list()) :: boolean()
  def updatable_path?(path) when is_list(path), do: path in @updatable_paths

  @doc """
  Sets `path` to `value` and validates the whole resulting config.

  A path outside `updatable_paths/0` gives `:config_update_forbidden`
  (category `:config`, subcategory `:runtime`, severity `:medium`, code
  `nil`, context `%{path: path, allowed_paths: updatable_paths()}`); an
  invalid result gives the validator's error.
  """
  @spec update_config(Config.t(), config_path(), term()) ::
          {:ok, Config.t()} | {:error, Error.t()}
  def update_config(config, path, value)
      when is_map(config) and (not is_struct(config) or is_struct(config, Config)) do
    if updatable_path?(path) do
      new_config = put_in(config, path, value)

      case ConfigValidator.validate(new_config) do
        :ok -> {:ok, new_config}
        {:error, _} = error -> error
      end
    else
      error(:config_update_forbidden, :runtime,
        message: "Configuration path #{inspect(path)} cannot be updated at runtime",
        context: %{path: path, allowed_paths: @updatable_paths}
      )
    end
  end

  @doc """
  Reads the value at `path`. `[]` returns the config itself; a present `nil`
  is `{:ok, nil}`. A missing key or a non-map before the end gives
  `:config_path_not_found` (subcategory `:access`); an exception while walking
  (for example an improper list) gives `:config_path_invalid`; a non-list
  path gives `:invalid_path` (subcategory `:validation`) and logs a warning.
  All have code `nil` and severity `:medium`.
  """
  @spec get_config_value(Config.t() | map(), term()) :: {:ok, term()} | {:error, Error.t()}
  def get_config_value(config, path) when is_list(path) do
    case walk(config, path) do
      {:ok, _} = found ->
        found

      :error ->
        error(:config_path_not_found, :access,
          message: "Configuration path not found: #{inspect(path)}",
          context: %{path: path}
        )
    end
  rescue
    exception ->
      error(:config_path_invalid, :access,
        message: "Invalid configuration path: #{Exception.message(exception)}",
        context: %{path: path, error: exception}
      )
  end

  def get_config_value(_config, path) do
    Logger.warning("Invalid configuration path type: #{inspect(path)}")

    error(:invalid_path, :validation,
      message: "Invalid path type: #{inspect(path)}",
      context: %{path: path}
    )
  end

  defp walk(value, []), do: {:ok, value}

  defp walk(map, [key | rest]) when is_map(map) do
    case Map.fetch(map, key) do
      {:ok, value} -> walk(value, rest)
      :error -> :error
    end
  end

  defp walk(_not_a_map, [_ | _]), do: :error

  @doc """
  Deep-merges application env into the config. Only keys of the config
  struct are used; a keyword list merging into a map section is turned into
  a map first, maps merge recursively, anything else replaces the value.
  """
  @spec merge_env_config(Config.t() | map(), keyword()) :: Config.t() | map()
  def merge_env_config(config, env) when is_map(config) and is_list(env) do
    Enum.reduce(env, config, fn
      {key, value}, acc when is_atom(key) and key != :__struct__ and is_map_key(acc, key) ->
        Map.put(acc, key, deep_merge(Map.fetch!(acc, key), value))

      _other, acc ->
        acc
    end)
  end

  defp deep_merge(left, right) when is_map(left) and is_list(right) do
    if Keyword.keyword?(right), do: deep_merge(left, Map.new(right)), else: right
  end

  defp deep_merge(left, right) when is_map(left) and is_map(right) and not is_struct(right) do
    Map.merge(left, right, fn _key, l, r -> deep_merge(l, r) end)
  end

  defp deep_merge(_left, right), do: right

  @doc """
  Puts each option into the config as is: whole sections are replaced (no
  deep merge) and unknown keys are added, as in the original.
  """
  @spec merge_opts_config(Config.t() | map(), keyword()) :: Config.t() | map()
  def merge_opts_config(config, opts) when is_list(opts) do
    Enum.reduce(opts, config, fn {key, value}, acc -> Map.put(acc, key, value) end)
  end

  @doc """
  `Config.new()` merged with the application env (`ElixirScope.Foundation.Env.all/0`:
  `:elixir_scope_foundation`, else `:elixir_scope`, per key) and then `opts`, validated.
  """
  @spec build_config(keyword()) :: {:ok, Config.t()} | {:error, Error.t()}
  def build_config(opts \\ []) do
    config =
      Config.new()
      |> merge_env_config(ElixirScope.Foundation.Env.all())
      |> merge_opts_config(opts)

    case ConfigValidator.validate(config) do
      :ok -> {:ok, config}
      {:error, _} = error -> error
    end
  end

  @doc "The default configuration (application env is ignored, as in the original)."
  @spec reset_config() :: Config.t()
  def reset_config, do: Config.new()

  @doc """
  The differences between two configs: equal keys are omitted, two maps give
  a nested diff (only when non-empty), anything else a leaf
  `%{old: o, new: n, path: full_path}`.

      iex> alias ElixirScope.Foundation.Types.Config
      iex> new = put_in(Config.new(), [:dev, :debug_mode], true)
      iex> ElixirScope.Foundation.Logic.ConfigLogic.diff_configs(Config.new(), new)
      %{dev: %{debug_mode: %{old: false, new: true, path: [:dev, :debug_mode]}}}
  """
  @spec diff_configs(map(), map()) :: map()
  def diff_configs(old, new), do: diff(old, new, [])

  defp diff(old, new, path) do
    old
    |> Map.keys()
    |> Enum.concat(Map.keys(new))
    |> Enum.uniq()
    |> Enum.reduce(%{}, fn key, acc ->
      o = Map.get(old, key)
      n = Map.get(new, key)

      cond do
        o == n -> acc
        is_map(o) and is_map(n) -> put_nested_diff(acc, key, diff(o, n, path ++ [key]))
        true -> Map.put(acc, key, %{old: o, new: n, path: path ++ [key]})
      end
    end)
  end

  defp put_nested_diff(acc, _key, nested) when map_size(nested) == 0, do: acc
  defp put_nested_diff(acc, key, nested), do: Map.put(acc, key, nested)

  defp error(error_type, subcategory, fields) do
    fields =
      [error_type: error_type, severity: :medium, category: :config, subcategory: subcategory]
      |> Keyword.merge(fields)

    {:error, Error.new([code: nil] ++ fields)}
  end
end
