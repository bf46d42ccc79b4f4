defmodule ElixirScope.Foundation.Integration.TelemetryFlowTest do
  # Production EventStore -> TelemetryService counters, read through the
  # Telemetry facade, the way the original's integration tests read them: not async.
  use ExUnit.Case, async: false

  import ExUnit.CaptureLog

  alias ElixirScope.Foundation.{Config, Events, Telemetry}

  defp events_stored do
    {:ok, metrics} = Telemetry.get_metrics()
    get_in(metrics, [:foundation, :events_stored]) || 0
  end

  test "foundation.events_stored counts store calls as an integer" do
    before = events_stored()

    for i <- 1..2 do
      {:ok, event} = Events.new_event(:telemetry_flow, %{i: i})
      {:ok, _} = Events.store(event)
    end

    {:ok, a} = Events.new_event(:telemetry_flow, %{batch: 1})
    {:ok, b} = Events.new_event(:telemetry_flow, %{batch: 2})
    {:ok, _} = Events.store_batch([a, b])

    after_stores = events_stored()
    assert is_integer(after_stores)
    # Two single stores and one batch call: three calls.
    assert after_stores == before + 3
  end

  test "5 concurrent stores are all counted" do
    before = events_stored()

    1..5
    |> Enum.map(fn i ->
      Task.async(fn ->
        {:ok, event} = Events.new_event(:telemetry_flow_concurrent, %{i: i})
        Events.store(event)
      end)
    end)
    |> Task.await_many()

    assert events_stored() == before + 5
  end

  test "a handler attached to the store's and the config's counters runs once per count" do
    stored = [:foundation, :event_store, :events_stored]
    updated = [:foundation, :config_updates]
    path = [:ai, :planning, :sampling_rate]
    {:ok, original} = Config.get(path)
    :ok = Telemetry.attach_handlers([stored, updated])
    level = Logger.level()
    Logger.configure(level: :debug)

    try do
      before = events_stored()

      log =
        capture_log([level: :debug], fn ->
          for i <- 1..3 do
            {:ok, event} = Events.new_event(:telemetry_handler_flow, %{i: i})
            {:ok, _} = Events.store(event)
          end

          :ok = Config.update(path, 0.25)
          :ok = Config.update(path, 0.75)
        end)

      # Three stores and two audit events.
      assert events_stored() == before + 5
      assert occurrences(log, "Telemetry event #{inspect(stored)}") == 5
      assert occurrences(log, "Telemetry event #{inspect(updated)}") == 2
    after
      Logger.configure(level: level)
      :ok = Telemetry.detach_handlers([stored, updated])
      :ok = Config.update(path, original)
    end
  end

  defp occurrences(log, text), do: length(String.split(log, text)) - 1
end
