defmodule ElixirScope.Foundation.Services.ConfigServer.Update do
  @moduledoc false
  # ConfigServer's update step: `Logic.ConfigLogic.update_config/3` with the
  # same results, doing only the work an update needs.
  #
  # The server's config is always valid (built by `ConfigLogic.build_config/1`
  # or `Types.Config.new/0`, or accepted by an earlier update), and an
  # updatable path changes one leaf of one top-level section. The whole-config
  # validator checks the sections in a fixed order and returns the first
  # failure; with every other section valid and unchanged, that failure can
  # only be in the changed section, and the section validator returns exactly
  # it (the same rules, the same error). So only that section is validated,
  # and only when the new leaf breaks its rule: `leaf_ok?/2` accepts exactly
  # what the rule of that leaf accepts (the rest of the section being valid
  # and unchanged, the section is then valid); a rejected leaf goes to the
  # section validator, which builds the error.
  #
  # `put_in/3` on `%Types.Config{}` goes through its `Access` implementation,
  # which rebuilds the struct and drops unknown top-level keys (for example
  # the `:namespace` start option). A config with such keys takes
  # `ConfigLogic.update_config/3` itself; any other config is updated with
  # plain map writes, which give the same result.

  alias ElixirScope.Foundation.Logic.ConfigLogic
  alias ElixirScope.Foundation.Types.Config
  alias ElixirScope.Foundation.Validation.ConfigValidator

  # Top-level keys of a config without extra keys (`:__struct__` included).
  @plain_size map_size(%Config{})

  @doc """
  `{:ok, new_config, {:ok, previous_value}, changed}` where `changed` is
  `{:key, section}` (only that top-level key differs) or `:all`; or
  `ConfigLogic.update_config/3`'s error.
  """
  def apply(%Config{} = config, path, value) when map_size(config) == @plain_size do
    case swap(config, path, value) do
      {new_config, previous} ->
        [section | _] = path

        case leaf_ok?(path, value) or validate(section, Map.fetch!(new_config, section)) do
          valid when valid in [true, :ok] -> {:ok, new_config, {:ok, previous}, {:key, section}}
          {:error, _} = error -> error
        end

      :slow ->
        slow(config, path, value)
    end
  end

  def apply(config, path, value), do: slow(config, path, value)

  # One clause per updatable path: the config with the leaf at `path` set to
  # `value`, and the leaf it replaced; `:slow` for any other path, or when
  # a map on the way is missing or a struct (the slow path then decides).
  for path <- ConfigLogic.updatable_paths() do
    case path do
      [section, key] ->
        defp swap(
               %{unquote(section) => %{unquote(key) => old} = s} = config,
               unquote(path),
               value
             )
             when not is_struct(s),
             do: {%{config | unquote(section) => %{s | unquote(key) => value}}, old}

      [section, middle, key] ->
        defp swap(
               %{unquote(section) => %{unquote(middle) => %{unquote(key) => old} = m} = s} =
                 config,
               unquote(path),
               value
             )
             when not is_struct(s) and not is_struct(m),
             do:
               {%{
                  config
                  | unquote(section) => %{s | unquote(middle) => %{m | unquote(key) => value}}
                }, old}
    end
  end

  defp swap(_config, _path, _value), do: :slow

  defp slow(config, path, value) do
    case ConfigLogic.update_config(config, path, value) do
      {:ok, new_config} ->
        {:ok, new_config, ConfigLogic.get_config_value(config, path), :all}

      {:error, _} = error ->
        error
    end
  end

  # The Rust rules of the updatable leaves (numbers in range, positive
  # integers, booleans).
  defp leaf_ok?([:ai, :planning, :sampling_rate], v),
    do: (is_integer(v) and v in 0..1) or (is_float(v) and v >= 0.0 and v <= 1.0)

  defp leaf_ok?([:ai, :planning, :performance_target], v), do: is_number(v) and v >= 0
  defp leaf_ok?([:capture, :processing, :batch_size], v), do: is_integer(v) and v > 0
  defp leaf_ok?([:capture, :processing, :flush_interval], v), do: is_integer(v) and v > 0
  defp leaf_ok?([:interface, :query_timeout], v), do: is_integer(v) and v > 0
  defp leaf_ok?([:interface, :max_results], v), do: is_integer(v) and v > 0
  defp leaf_ok?([:dev, _flag], v), do: is_boolean(v)
  defp leaf_ok?(_path, _v), do: false

  defp validate(:ai, section), do: ConfigValidator.validate_ai_config(section)
  defp validate(:capture, section), do: ConfigValidator.validate_capture_config(section)
  defp validate(:storage, section), do: ConfigValidator.validate_storage_config(section)
  defp validate(:interface, section), do: ConfigValidator.validate_interface_config(section)
  defp validate(:dev, section), do: ConfigValidator.validate_dev_config(section)
end
