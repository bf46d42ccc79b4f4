defmodule ElixirScope.Foundation.Integration.TelemetryFlowTest do
  # Production EventStore -> TelemetryService counters, read through the
  # Telemetry facade, the way the original's integration tests read them: not async.
  use ExUnit.Case, async: false

  alias ElixirScope.Foundation.{Events, Telemetry}

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
end
