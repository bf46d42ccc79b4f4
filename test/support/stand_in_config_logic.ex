# TEMPORARY stand-in (h4): a minimal ConfigLogic/ConfigValidator following
# API.md 8/10 for the checks h4's tests touch, defined ONLY when h2's real
# modules are not part of the build. Delete this file once h2 is merged.
unless match?({:module, _}, Code.ensure_compiled(ElixirScope.Foundation.Logic.ConfigLogic)) do
  defmodule ElixirScope.Foundation.Validation.ConfigValidator do
    @moduledoc false
    alias ElixirScope.Foundation.Types.Error

    def validate(config) do
      p = config.ai.planning
      pr = config.capture.processing
      i = config.interface
      d = config.dev

      cond do
        not (is_number(p.performance_target) and p.performance_target >= 0) ->
          err(:constraint_violation, 1003, "Performance target must be a non-negative number")

        not (is_number(p.sampling_rate) and p.sampling_rate >= 0 and p.sampling_rate <= 1) ->
          err(:range_error, 1004, "Sampling rate must be between 0 and 1")

        not Enum.all?([pr.batch_size, pr.flush_interval, pr.max_queue_size], &pos_int?/1) ->
          err(:validation_failed, 1001, "Invalid processing configuration")

        not (pos_int?(i.query_timeout) and pos_int?(i.max_results)) ->
          err(:validation_failed, 1001, "Invalid interface configuration")

        not Enum.all?([d.debug_mode, d.verbose_logging, d.performance_monitoring], &is_boolean/1) ->
          err(:validation_failed, 1001, "Invalid development configuration")

        true ->
          :ok
      end
    end

    defp pos_int?(v), do: is_integer(v) and v > 0

    defp err(type, code, message) do
      {:error,
       Error.new(
         code: code,
         error_type: type,
         message: message,
         severity: if(code in [1003, 1004], do: :high, else: :medium),
         category: :config,
         subcategory: :validation
       )}
    end
  end

  defmodule ElixirScope.Foundation.Logic.ConfigLogic do
    @moduledoc false
    alias ElixirScope.Foundation.Types.{Config, Error}
    alias ElixirScope.Foundation.Validation.ConfigValidator

    @paths [
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

    def updatable_paths, do: @paths

    def update_config(config, path, value) do
      if path in @paths do
        new = put_in(config, path, value)
        with :ok <- ConfigValidator.validate(new), do: {:ok, new}
      else
        {:error,
         Error.new(
           error_type: :config_update_forbidden,
           message: "Configuration path #{inspect(path)} cannot be updated at runtime",
           context: %{path: path, allowed_paths: @paths},
           category: :config,
           subcategory: :runtime,
           severity: :medium,
           code: nil
         )}
      end
    end

    def get_config_value(config, path) when is_list(path) do
      Enum.reduce_while(path, {:ok, config}, fn key, {:ok, acc} ->
        if is_map(acc) and Map.has_key?(acc, key),
          do: {:cont, {:ok, Map.get(acc, key)}},
          else: {:halt, :missing}
      end)
      |> case do
        {:ok, v} ->
          {:ok, v}

        :missing ->
          {:error,
           Error.new(
             code: nil,
             error_type: :config_path_not_found,
             message: "Configuration path not found: #{inspect(path)}",
             context: %{path: path},
             category: :config,
             subcategory: :access,
             severity: :medium
           )}
      end
    end

    def build_config(opts \\ []) do
      env = Application.get_all_env(:elixir_scope)

      config =
        Enum.reduce(env, Config.new(), fn {k, v}, acc ->
          if Map.has_key?(acc, k), do: Map.put(acc, k, merge(Map.get(acc, k), v)), else: acc
        end)

      config = Enum.reduce(opts, config, fn {k, v}, acc -> Map.put(acc, k, v) end)
      with :ok <- ConfigValidator.validate(config), do: {:ok, config}
    end

    defp merge(%{} = a, b) when is_list(b), do: merge(a, Map.new(b))

    defp merge(%{} = a, %{} = b),
      do: Map.merge(a, b, fn _k, x, y -> merge(x, y) end)

    defp merge(_a, b), do: b
  end
end
