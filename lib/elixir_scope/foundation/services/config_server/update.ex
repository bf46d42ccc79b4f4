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
  def apply(%Config{} = config, path, value) do
    with true <- map_size(config) == @plain_size and ConfigLogic.updatable_path?(path),
         [section | rest] = path,
         {:ok, old_section} <- Map.fetch(config, section),
         {:ok, previous} <- fetch(old_section, rest),
         {:ok, new_section} <- put(old_section, rest, value) do
      case leaf_ok?(path, value) or validate(section, new_section) do
        valid when valid in [true, :ok] ->
          {:ok, %{config | section => new_section}, {:ok, previous}, {:key, section}}

        {:error, _} = error ->
          error
      end
    else
      _ -> slow(config, path, value)
    end
  end

  def apply(config, path, value), do: slow(config, path, value)

  defp slow(config, path, value) do
    case ConfigLogic.update_config(config, path, value) do
      {:ok, new_config} ->
        {:ok, new_config, ConfigLogic.get_config_value(config, path), :all}

      {:error, _} = error ->
        error
    end
  end

  defp fetch(value, []), do: {:ok, value}

  defp fetch(%{} = map, [key | rest]),
    do: with({:ok, v} <- Map.fetch(map, key), do: fetch(v, rest))

  defp fetch(_value, _path), do: :error

  # Only through existing maps (a valid config has them all); anything else
  # is left to the slow path.
  defp put(%{} = map, [key], value) when not is_struct(map), do: {:ok, Map.put(map, key, value)}

  defp put(%{} = map, [key | rest], value) when not is_struct(map) do
    with {:ok, inner} <- Map.fetch(map, key),
         {:ok, new_inner} <- put(inner, rest, value),
         do: {:ok, Map.put(map, key, new_inner)}
  end

  defp put(_value, _path, _new), do: :error

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
