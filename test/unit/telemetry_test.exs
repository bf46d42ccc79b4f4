defmodule ElixirScope.Foundation.TelemetryTest do
  # The facade addresses the :production instance: not async.
  use ExUnit.Case, async: false

  alias ElixirScope.Foundation.{Error, Telemetry}

  defp metrics do
    {:ok, metrics} = Telemetry.get_metrics()
    metrics
  end

  defp count(path), do: get_in(metrics(), path) || 0

  test "delegates to the production TelemetryService" do
    assert Telemetry.available?()
    assert :ok = Telemetry.initialize()
    assert {:ok, %{status: :running}} = Telemetry.status()
    assert :ok = Telemetry.execute([:facade, :exec], %{value: 4}, %{})
    assert :ok = Telemetry.execute([:facade, :exec], %{value: 8}, %{})
    assert %{count: 2, measurements: %{value: 6.0}} = metrics().facade.exec
    assert :ok = Telemetry.emit_gauge([:facade, :gauge], 9, %{})
    assert %{measurements: %{gauge: 9}} = metrics().facade.gauge
    assert 3 = Telemetry.measure([:facade, :measured], %{}, fn -> 3 end)
    assert %{count: 1} = metrics().facade.measured.stop
    assert :ok = Telemetry.attach_handlers([[:facade, :exec]])
    assert :ok = Telemetry.detach_handlers([[:facade, :exec]])
  end

  test "foundation counters grow by one integer per emit call" do
    before = count([:foundation, :config_updates])
    stored = count([:foundation, :events_stored])
    :ok = Telemetry.emit_counter([:foundation, :config_updates], %{path: [:dev, :debug_mode]})
    :ok = Telemetry.emit_counter([:foundation, :event_store, :events_stored], %{batch_size: 3})
    assert count([:foundation, :config_updates]) == before + 1
    assert count([:foundation, :events_stored]) == stored + 1
    assert is_integer(count([:foundation, :config_updates]))
  end

  test "time_function/3 records [:elixir_scope, :function, :execution, :stop]" do
    before = get_in(metrics(), [:elixir_scope, :function, :execution, :stop, :count]) || 0
    assert :done = Telemetry.time_function(MyMod, :my_fun, fn -> :done end)
    entry = metrics().elixir_scope.function.execution.stop
    assert entry.count == before + 1
    assert is_integer(entry.measurements.duration)

    assert_raise ArgumentError, fn ->
      Telemetry.time_function(MyMod, :boom, fn -> raise ArgumentError, "x" end)
    end

    assert %{metadata: %{module: MyMod, function: :boom, error: %ArgumentError{}}} =
             metrics().elixir_scope.function.execution.exception
  end

  test "emit_performance/3 is a gauge, emit_system_event/2 a counter" do
    :ok = Telemetry.emit_performance(:facade_latency, 12.5, %{unit: :ms})
    :ok = Telemetry.emit_performance(:facade_latency, 2)

    assert %{measurements: %{gauge: 2}, metadata: %{unit: :ms}} =
             metrics().elixir_scope.performance.facade_latency

    before = get_in(metrics(), [:elixir_scope, :system, :facade_boot, :count]) || 0
    :ok = Telemetry.emit_system_event(:facade_boot)
    :ok = Telemetry.emit_system_event(:facade_boot, %{node: node()})

    assert %{count: count, measurements: %{counter: counter}} =
             metrics().elixir_scope.system.facade_boot

    assert count == before + 2 and counter == count
  end

  test "Error.collect_error_metrics/1 counts by category and subcategory" do
    before = get_in(metrics(), [:foundation, :errors, :external, :timeout, :count]) || 0
    :ok = Error.collect_error_metrics(Error.new(:timeout))
    assert metrics().foundation.errors.external.timeout.count == before + 1
  end

  describe "get_metrics_for/1 (fixed: the original always raised)" do
    setup do
      :ok = Telemetry.emit_performance(:for_a, 1)
      :ok = Telemetry.emit_performance(:for_b, 2)
      :ok = Telemetry.emit_system_event(:for_c)
      :ok
    end

    test "keeps only the branch under the pattern, with the same nesting" do
      {:ok, all} = Telemetry.get_metrics()
      assert {:ok, perf} = Telemetry.get_metrics_for([:elixir_scope, :performance])
      assert Map.keys(perf) == [:elixir_scope]
      assert Map.keys(perf.elixir_scope) == [:performance]
      assert perf.elixir_scope.performance == all.elixir_scope.performance

      assert {:ok, one} = Telemetry.get_metrics_for([:elixir_scope, :performance, :for_a])
      assert %{elixir_scope: %{performance: %{for_a: %{measurements: %{gauge: 1}}}}} = one
      assert map_size(one.elixir_scope.performance) == 1
    end

    test "[] keeps everything; no match or a too-deep pattern gives %{}" do
      assert {:ok, all} = Telemetry.get_metrics_for([])
      assert Map.has_key?(all, :retrieved_at)
      assert {:ok, %{}} == Telemetry.get_metrics_for([:no_such_metric_h5])
      assert {:ok, %{}} == Telemetry.get_metrics_for([:elixir_scope, :system, :for_c, :count, :x])
      count_path = [:foundation, :config_updates]
      :ok = Telemetry.emit_counter(count_path, %{})
      assert {:ok, %{foundation: %{config_updates: n}}} = Telemetry.get_metrics_for(count_path)
      assert is_integer(n)
    end
  end
end
