defmodule Bench.ReferenceValidation do
  @moduledoc """
  Pure-Elixir config and event validation written the way the original
  modules were (the same rules as `test/support/validation_reference.ex`,
  copied because bench scripts also run in `MIX_ENV=prod`, where
  test/support is not compiled). The reference models of bench/support
  validate with it, never with the NIF validators.
  Returns :ok | {:error, {error_type, message}} | {:raise, exception_module}.
  """

  @providers [:mock, :openai, :anthropic, :gemini]
  @allowed_types [:function_entry, :function_exit, :state_change, :message_send] ++
                   [:message_receive, :spawn, :exit, :link, :unlink, :monitor, :demonitor] ++
                   [:system_event, :custom_event, :config_updated, :config_reset, :test] ++
                   [:test1, :test2, :test3, :default, :type_a, :type_b]

  def allowed_types, do: @allowed_types

  def validate_config(config) do
    Enum.reduce_while([:ai, :capture, :storage, :interface, :dev], :ok, fn key, :ok ->
      case Map.fetch(config, key) do
        {:ok, section} -> section(key, section) |> halt_unless_ok()
        :error -> {:halt, {:raise, KeyError}}
      end
    end)
  end

  defp halt_unless_ok(:ok), do: {:cont, :ok}
  defp halt_unless_ok(other), do: {:halt, other}

  defp pos?(map, keys),
    do: is_map(map) and Enum.all?(keys, &(is_integer(Map.get(map, &1)) and Map.get(map, &1) > 0))

  defp bools?(map, keys), do: is_map(map) and Enum.all?(keys, &is_boolean(Map.get(map, &1)))
  defp err(type, msg), do: {:error, {type, msg}}

  defp section(:ai, %{provider: p} = ai) do
    cond do
      p not in @providers ->
        err(:invalid_config_value, "Invalid AI provider")

      not Map.has_key?(ai, :analysis) ->
        {:raise, KeyError}

      not pos?(ai.analysis, [:max_file_size, :timeout, :cache_ttl]) ->
        err(:validation_failed, "Invalid AI analysis configuration")

      not Map.has_key?(ai, :planning) ->
        {:raise, KeyError}

      true ->
        planning(ai.planning)
    end
  end

  defp section(:capture, %{ring_buffer: rb, processing: pr, vm_tracing: vm}) do
    cond do
      not pos?(rb, [:size, :max_events]) ->
        err(:validation_failed, "Invalid ring buffer configuration")

      Map.get(rb, :overflow_strategy) not in [:drop_oldest, :drop_newest, :block] ->
        err(:invalid_config_value, "Invalid overflow strategy")

      not pos?(pr, [:batch_size, :flush_interval, :max_queue_size]) ->
        err(:validation_failed, "Invalid processing configuration")

      not bools?(vm, [
        :enable_spawn_trace,
        :enable_exit_trace,
        :enable_message_trace,
        :trace_children
      ]) ->
        err(:validation_failed, "Invalid VM tracing configuration")

      true ->
        :ok
    end
  end

  defp section(:storage, %{hot: hot, warm: warm, cold: cold}) do
    cond do
      not pos?(hot, [:max_events, :max_age_seconds, :prune_interval]) ->
        err(:validation_failed, "Invalid hot storage configuration")

      (w = warm(warm)) != :ok ->
        w

      not (is_map(cold) and Map.get(cold, :enable) === false) ->
        err(:validation_failed, "Invalid cold storage configuration")

      true ->
        :ok
    end
  end

  defp section(:interface, i) do
    if pos?(i, [:query_timeout, :max_results]) and bools?(i, [:enable_streaming]),
      do: :ok,
      else: err(:validation_failed, "Invalid interface configuration")
  end

  defp section(:dev, d) do
    if bools?(d, [:debug_mode, :verbose_logging, :performance_monitoring]),
      do: :ok,
      else: err(:validation_failed, "Invalid development configuration")
  end

  defp section(_key, _bad), do: {:raise, FunctionClauseError}

  defp planning(%{performance_target: t, sampling_rate: r, default_strategy: s}) do
    cond do
      not (is_number(t) and t >= 0) ->
        err(:constraint_violation, "Performance target must be a non-negative number")

      not (is_number(r) and r >= 0 and r <= 1) ->
        err(:range_error, "Sampling rate must be between 0 and 1")

      s not in [:fast, :balanced, :thorough] ->
        err(:invalid_config_value, "Invalid planning strategy")

      true ->
        :ok
    end
  end

  defp planning(_), do: err(:validation_failed, "Invalid AI planning configuration")

  defp warm(%{enable: false}), do: :ok

  defp warm(%{enable: true} = w) do
    cond do
      not (is_binary(Map.get(w, :path)) and is_integer(Map.get(w, :max_size_mb)) and
               Map.get(w, :max_size_mb) > 0) ->
        err(:validation_failed, "Invalid warm storage configuration")

      Map.get(w, :compression) not in [:none, :gzip, :zstd] ->
        err(:invalid_config_value, "Invalid compression type")

      true ->
        :ok
    end
  end

  defp warm(_), do: err(:validation_failed, "Invalid warm storage configuration")

  def validate_event(event) do
    with :ok <- required(event), :ok <- types(event) do
      size = :erlang.external_size(event.data)
      if size > 1_000_000, do: err(:data_too_large, "Event data too large"), else: :ok
    end
  end

  defp required(e) do
    cond do
      is_nil(e.event_id) -> err(:validation_failed, "Event ID cannot be nil")
      is_nil(e.event_type) -> err(:validation_failed, "Event type cannot be nil")
      is_nil(e.timestamp) -> err(:validation_failed, "Timestamp cannot be nil")
      true -> :ok
    end
  end

  defp types(e) do
    cond do
      e.event_id && not (is_integer(e.event_id) and e.event_id > 0) ->
        err(:type_mismatch, "Event ID must be a positive integer")

      e.event_type && not is_atom(e.event_type) ->
        err(:type_mismatch, "Event type must be an atom")

      e.timestamp && not is_integer(e.timestamp) ->
        err(:type_mismatch, "Timestamp must be an integer")

      e.wall_time && not match?(%DateTime{}, e.wall_time) ->
        err(:type_mismatch, "Wall time must be a DateTime")

      e.node && not is_atom(e.node) ->
        err(:type_mismatch, "Node must be an atom")

      e.pid && not is_pid(e.pid) ->
        err(:type_mismatch, "PID must be a process identifier")

      e.correlation_id && not is_binary(e.correlation_id) ->
        err(:type_mismatch, "Correlation ID must be a string")

      e.parent_id && not (is_integer(e.parent_id) and e.parent_id > 0) ->
        err(:type_mismatch, "Parent ID must be a positive integer")

      true ->
        :ok
    end
  end
end
