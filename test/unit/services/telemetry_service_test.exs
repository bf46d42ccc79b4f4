defmodule ElixirScope.Foundation.Services.TelemetryServiceTest do
  # Instances in isolated {:test, ref} namespaces, addressed with `namespace:`.
  use ExUnit.Case, async: true

  alias ElixirScope.Foundation.ProcessRegistry
  alias ElixirScope.Foundation.Services.TelemetryService
  alias ElixirScope.Foundation.Types.Error
  import ElixirScope.Foundation.TestSupport.Eventually

  defp start(opts \\ []) do
    ns = {:test, make_ref()}
    opts = Keyword.merge([namespace: ns, enable_vm_metrics: false], opts)
    pid = start_supervised!({TelemetryService, opts})
    {ns, pid}
  end

  defp metrics(ns) do
    {:ok, metrics} = TelemetryService.get_metrics(namespace: ns)
    metrics
  end

  defp status(ns) do
    {:ok, status} = TelemetryService.status(namespace: ns)
    status
  end

  describe "get_metrics/1 nested shape" do
    test "nests names, exposes the four foundation counters as call counts" do
      {ns, _} = start()
      opts = [namespace: ns]
      :ok = TelemetryService.execute([:a, :c], %{duration: 10, other: "t"}, %{first: 1}, opts)
      :ok = TelemetryService.execute([:a, :c], %{duration: 20, other: "t"}, %{second: 2}, opts)
      :ok = TelemetryService.emit_counter([:foundation, :config_updates], 1, %{path: [:x]}, opts)
      :ok = TelemetryService.emit_counter([:foundation, :config_updates], %{path: [:y]}, opts)

      :ok =
        TelemetryService.emit_counter([:foundation, :event_store, :events_stored], 5, %{}, opts)

      :ok = TelemetryService.emit_counter([:foundation, :config_resets], 1, %{}, opts)
      :ok = TelemetryService.emit_counter([:foundation, :config_operations], 1, %{}, opts)
      :ok = TelemetryService.emit_gauge([:single], 3, %{}, opts)
      :ok = TelemetryService.execute([], %{gauge: 1}, %{}, opts)

      m = metrics(ns)

      assert %{count: 2, measurements: measurements, metadata: %{first: 1}, timestamp: ts} = m.a.c

      assert measurements == %{duration: 15.0, other: "t"}
      assert is_integer(ts)

      assert m.foundation == %{
               config_updates: 2,
               events_stored: 1,
               config_resets: 1,
               config_operations: 1
             }

      assert %{count: 1, measurements: %{gauge: 3}} = m.single
      assert is_integer(m.retrieved_at)
      assert Map.keys(m) |> Enum.sort() == [:a, :foundation, :retrieved_at, :single]
    end

    test "a deeper name nests inside its parent's entry" do
      {ns, _} = start()
      :ok = TelemetryService.emit_counter([:p, :q], 1, %{}, namespace: ns)
      :ok = TelemetryService.emit_counter([:p, :q, :r], 1, %{}, namespace: ns)
      assert %{count: 1, measurements: %{counter: 1}, r: %{count: 1}} = metrics(ns).p.q
    end
  end

  describe "get_metrics/1 of small and big stores" do
    test "a few names and a hundred names come back whole" do
      {ns, _} = start()

      for n <- [3, 100] do
        for i <- 1..n,
            do: :ok = TelemetryService.emit_counter([:size, :"n#{i}"], %{i: i}, namespace: ns)

        size = metrics(ns).size
        assert map_size(size) == n
        assert %{count: c, metadata: %{i: 1}} = size.n1
        assert c == if(n == 3, do: 1, else: 2)
      end
    end
  end

  describe "nesting, seeded random names" do
    test "every recorded name is found at its path with its exact count" do
      :rand.seed(:exsss, {1, 2, 3})
      {ns, _} = start()
      segments = [:a, :b, :c, :d]

      model =
        Enum.reduce(1..2_000, %{}, fn _, acc ->
          name = for _ <- 1..:rand.uniform(3), do: Enum.random(segments)
          :ok = TelemetryService.emit_counter(name, %{}, namespace: ns)
          Map.update(acc, name, 1, &(&1 + 1))
        end)

      m = metrics(ns)

      for {name, count} <- model do
        assert %{count: ^count, measurements: %{counter: ^count}} = get_in(m, name)
      end

      assert status(ns).metrics_count == map_size(model)
    end
  end

  describe "recording rules" do
    test "gauge, counter, average, non-numeric, first metadata, exact terms" do
      {ns, _} = start()
      ref = make_ref()
      me = self()
      name = [:rules]

      for {m, md} <- [
            {%{gauge: 1, counter: 1, avg: 1, tag: :a}, %{ref: ref}},
            {%{gauge: 5, counter: 2, avg: 3, tag: {me, "b"}}, %{other: true}},
            {%{gauge: 2.5, counter: 0.5, avg: 4}, %{}}
          ] do
        :ok = TelemetryService.execute(name, m, md, namespace: ns)
      end

      assert %{count: 3, measurements: measurements, metadata: %{ref: ^ref}} = metrics(ns).rules
      assert measurements == %{gauge: 2.5, counter: 3.5, avg: 3.0, tag: {me, "b"}}
    end
  end

  describe "recording runs in the caller" do
    test "a suspended server does not delay or lose counters" do
      {ns, pid} = start()
      :ok = :sys.suspend(pid)
      for _ <- 1..100, do: :ok = TelemetryService.emit_counter([:s], %{}, namespace: ns)
      assert %{count: 100, measurements: %{counter: 100}} = metrics(ns).s
      :ok = :sys.resume(pid)
    end

    test "a counter's timestamp is the VM monotonic clock at its last event" do
      {ns, _} = start()
      opts = [namespace: ns]
      slack = System.convert_time_unit(1, :microsecond, :native)

      for _ <- 1..500 do
        before = System.monotonic_time()
        :ok = TelemetryService.emit_counter([:stamped], %{}, opts)
        later = System.monotonic_time()
        %{timestamp: ts} = metrics(ns).stamped
        assert before - slack <= ts and ts <= later
      end

      %{timestamp: first} = metrics(ns).stamped
      Process.sleep(5)
      :ok = TelemetryService.emit_counter([:stamped], %{}, opts)
      %{count: 501, timestamp: last} = metrics(ns).stamped
      assert last - first >= System.convert_time_unit(5, :millisecond, :native)
    end

    test "8 processes emitting the same counter give exact totals" do
      {ns, _} = start()

      1..8
      |> Enum.map(fn _ ->
        Task.async(fn ->
          for _ <- 1..1_000, do: TelemetryService.emit_counter([:hot], 1, %{}, namespace: ns)
        end)
      end)
      |> Task.await_many(30_000)

      assert %{count: 8_000, measurements: %{counter: 8_000}} = metrics(ns).hot
    end
  end

  describe "absent service and bad input" do
    test "nothing is recorded, calls return :ok or the unavailable error" do
      ns = {:test, make_ref()}
      opts = [namespace: ns]
      assert :ok = TelemetryService.execute([:x], %{a: 1}, %{}, opts)
      assert :ok = TelemetryService.emit_counter([:x], 1, %{}, opts)
      assert :ok = TelemetryService.detach_handlers([[:x]], opts)
      refute TelemetryService.available?(opts)

      for result <- [
            TelemetryService.get_metrics(opts),
            TelemetryService.status(opts),
            TelemetryService.reset_metrics(opts),
            TelemetryService.attach_handlers([[:x]], opts)
          ] do
        assert {:error,
                %Error{
                  code: nil,
                  error_type: :service_unavailable,
                  message: "Telemetry service not started",
                  severity: :medium,
                  category: :system,
                  subcategory: :initialization
                }} = result
      end
    end

    test "hot-path functions never raise and record nothing from garbage" do
      {ns, _} = start()
      opts = [namespace: ns]
      assert :ok = TelemetryService.execute(:not_a_list, %{}, %{}, opts)
      assert :ok = TelemetryService.execute([:a], :not_a_map, %{}, opts)
      assert :ok = TelemetryService.execute(["string"], %{}, %{}, opts)
      assert :ok = TelemetryService.execute([:a | :improper], %{}, %{}, opts)
      assert :ok = TelemetryService.execute([:a], %{}, %{}, bogus: :option)
      assert :ok = TelemetryService.emit_counter([:a], "one", %{})
      assert :ok = TelemetryService.emit_counter([:a], :x, %{}, opts)
      assert :ok = TelemetryService.emit_counter({:a}, 1, %{}, opts)
      assert :ok = TelemetryService.emit_gauge([:a], :high, %{}, opts)
      assert 1 = TelemetryService.measure(:not_a_list, %{}, fn -> 1 end, opts)
      assert status(ns).metrics_count == 0
    end
  end

  describe "measure/4" do
    test "returns the result and records name ++ [:stop] with a duration" do
      {ns, _} = start()
      assert :result = TelemetryService.measure([:m], %{k: 1}, fn -> :result end, namespace: ns)
      assert %{count: 1, measurements: %{duration: d}, metadata: %{k: 1}} = metrics(ns).m.stop
      assert is_integer(d) and d >= 0
    end

    test "records name ++ [:exception] with the error, then reraises" do
      {ns, _} = start()

      assert_raise RuntimeError, "test error", fn ->
        TelemetryService.measure([:m], %{k: 1}, fn -> raise "test error" end, namespace: ns)
      end

      assert %{metadata: %{k: 1, error: %RuntimeError{message: "test error"}}} =
               metrics(ns).m.exception

      refute Map.has_key?(metrics(ns).m, :stop)
      assert catch_throw(TelemetryService.measure([:t], %{}, fn -> throw(:x) end)) == :x
    end
  end

  describe "server messages addressed to the pid" do
    test "answer like the public functions and act on their own namespace" do
      {ns, pid} = start()
      GenServer.cast(pid, {:execute_event, [:e], %{gauge: 3}, %{via: :cast}})
      assert {:ok, %{e: %{count: 1, metadata: %{via: :cast}}}} = GenServer.call(pid, :get_metrics)
      assert :ok = GenServer.call(pid, {:attach_handlers, [[:e], [:f, :g]]})
      assert {:ok, %{handlers_count: 2, metrics_count: 1}} = GenServer.call(pid, :get_status)
      GenServer.cast(pid, {:detach_handlers, [[:e]]})
      assert {:ok, %{handlers_count: 1}} = GenServer.call(pid, :get_status)
      assert :ok = GenServer.call(pid, :clear_metrics)
      assert {:ok, %{retrieved_at: _} = empty} = GenServer.call(pid, :get_metrics)
      assert map_size(empty) == 1
      assert status(ns).handlers_count == 1
      assert :ok = GenServer.call(pid, :reset_state)
      assert status(ns).handlers_count == 0

      assert {:error, %Error{error_type: :invalid_input}} =
               GenServer.call(pid, {:attach_handlers, [["not", "atoms"]]})
    end

    test "status/1 shape; start options are merged into the config" do
      {ns, _} = start(cleanup_interval: 1_000, custom: :kept)

      assert %{
               status: :running,
               metrics_count: 0,
               handlers_count: 0,
               metrics_dropped: 0,
               config: %{
                 namespace: ^ns,
                 custom: :kept,
                 cleanup_interval: 1_000,
                 metric_retention_ms: 300_000,
                 enable_vm_metrics: false,
                 enable_process_metrics: true,
                 max_metrics: 10_000
               }
             } = status(ns)
    end

    test "reset_metrics/1 clears metrics and keeps handlers" do
      {ns, _} = start()
      :ok = TelemetryService.attach_handlers([[:x]], namespace: ns)
      :ok = TelemetryService.emit_counter([:x], %{}, namespace: ns)
      assert :ok = TelemetryService.reset_metrics(namespace: ns)
      assert %{metrics_count: 0, handlers_count: 1} = status(ns)
    end
  end

  describe "lifecycle" do
    test "VM gauges are emitted at start when enabled" do
      {ns, _} = start(enable_vm_metrics: true)
      vm = metrics(ns).vm

      for key <- [:memory, :total_run_queue_lengths, :system_counts] do
        assert %{measurements: %{gauge: 1}, metadata: %{source: :vm}} = vm[key]
      end
    end

    test "metrics survive a crash of the service process" do
      {ns, pid} = start()
      :ok = TelemetryService.emit_counter([:kept], 2, %{}, namespace: ns)
      Process.exit(pid, :kill)

      wait_until(fn ->
        new = GenServer.whereis(ProcessRegistry.via_tuple(ns, :telemetry_service))
        new != nil and new != pid
      end)

      assert %{count: 1} = metrics(ns).kept
      # A call returns once the new process has re-attached the handle.
      assert {:ok, _} = TelemetryService.status(namespace: ns)
      :ok = TelemetryService.emit_counter([:kept], 3, %{}, namespace: ns)
      assert %{count: 2, measurements: %{counter: 5}} = metrics(ns).kept
    end

    test "initialize/1 starts an instance once; bad options are an error" do
      ns = {:test, make_ref()}
      assert :ok = TelemetryService.initialize(namespace: ns, enable_vm_metrics: false)
      assert TelemetryService.available?(namespace: ns)
      assert :ok = TelemetryService.initialize(namespace: ns)
      pid = GenServer.whereis(ProcessRegistry.via_tuple(ns, :telemetry_service))
      :ok = GenServer.stop(pid)

      assert {:error,
              %Error{
                error_type: :service_initialization_failed,
                message: "Failed to initialize telemetry service",
                context: %{reason: {:invalid_option, :cleanup_interval, 0}},
                category: :system,
                subcategory: :startup,
                severity: :high,
                code: nil
              }} = TelemetryService.initialize(namespace: ns, cleanup_interval: 0)
    end
  end

  describe "bounded memory" do
    test "retention cleanup does not wipe recent metrics (the original's unit bug)" do
      {ns, _} = start(cleanup_interval: 5)
      :ok = TelemetryService.emit_counter([:recent], %{}, namespace: ns)
      # ~20 cleanup ticks with the default 300 000 ms retention.
      Process.sleep(100)
      assert %{count: 1} = metrics(ns).recent
    end

    test "metrics idle longer than metric_retention_ms are removed" do
      {ns, _} = start(cleanup_interval: 5, metric_retention_ms: 20)
      :ok = TelemetryService.emit_counter([:idle], %{}, namespace: ns)
      wait_until(fn -> not Map.has_key?(metrics(ns), :idle) end)
      assert status(ns).metrics_count == 0
    end

    test "at most max_metrics distinct names; the rest are counted as dropped" do
      {ns, _} = start(max_metrics: 5)
      for i <- 1..12, do: TelemetryService.emit_counter([:cap, :"n#{i}"], %{}, namespace: ns)
      :ok = TelemetryService.emit_counter([:cap, :n1], %{}, namespace: ns)
      assert %{metrics_count: 5, metrics_dropped: 7} = status(ns)
      assert %{count: 2} = metrics(ns).cap.n1
    end
  end
end

defmodule ElixirScope.Foundation.Services.TelemetryServiceGlobalTest do
  # Touches app env, the Logger level, the :telemetry module name and the
  # :production instance: not async.
  use ExUnit.Case, async: false

  import ExUnit.CaptureLog

  alias ElixirScope.Foundation.ProcessRegistry
  alias ElixirScope.Foundation.Services.TelemetryService
  alias ElixirScope.Foundation.Types.Error
  import ElixirScope.Foundation.TestSupport.Eventually

  defp start(opts \\ []) do
    ns = {:test, make_ref()}
    pid = start_supervised!({TelemetryService, [namespace: ns, enable_vm_metrics: false] ++ opts})
    {ns, pid}
  end

  defp define_fake_telemetry(body) do
    Code.compiler_options(ignore_module_conflict: true)

    Code.compile_string("""
    defmodule :telemetry do
      def execute(name, measurements, metadata) do
        _ = {name, measurements, metadata}
        #{body}
      end
    end
    """)

    Code.compiler_options(ignore_module_conflict: false)
  end

  defp purge_fake_telemetry do
    :code.purge(:telemetry)
    :code.delete(:telemetry)
    :code.purge(:telemetry)
  end

  defp wait_for_restart(via, old) do
    wait_until(fn ->
      pid = GenServer.whereis(via)
      pid not in [nil, old] && pid
    end)
  end

  describe "reset_state/1" do
    test "forbidden outside test mode (checked in the caller and in the server)" do
      {ns, pid} = start()
      Application.put_env(:elixir_scope_foundation, :test_mode, false)

      try do
        expected = %{
          code: 7002,
          error_type: :operation_forbidden,
          message: "State reset only allowed in test mode",
          severity: :high,
          category: :security,
          subcategory: :authorization
        }

        assert {:error, %Error{} = e1} = TelemetryService.reset_state(namespace: ns)
        assert {:error, %Error{} = e2} = GenServer.call(pid, :reset_state)
        assert Map.take(e1, Map.keys(expected)) == expected
        assert Map.take(e2, Map.keys(expected)) == expected
      after
        Application.put_env(:elixir_scope_foundation, :test_mode, true)
      end
    end

    test "in test mode clears metrics and handlers and restores the default config" do
      {ns, _} = start(cleanup_interval: 1_000)
      :ok = TelemetryService.attach_handlers([[:x]], namespace: ns)
      :ok = TelemetryService.emit_counter([:x], %{}, namespace: ns)
      assert :ok = TelemetryService.reset_state(namespace: ns)
      {:ok, status} = TelemetryService.status(namespace: ns)
      assert %{metrics_count: 0, handlers_count: 0} = status
      assert status.config.cleanup_interval == 60_000
    end
  end

  describe ":telemetry forwarding" do
    setup do
      on_exit(&purge_fake_telemetry/0)
    end

    test "forwards every event when :telemetry is loaded, even without a service" do
      Process.register(self(), :h5_telemetry_probe)

      define_fake_telemetry(
        "send(:h5_telemetry_probe, {:forwarded, name, measurements, metadata})"
      )

      {ns, _} = start()

      :ok = TelemetryService.execute([:f, :x], %{v: 1}, %{m: 1}, namespace: ns)
      assert_receive {:forwarded, [:f, :x], %{v: 1}, %{m: 1}}
      :ok = TelemetryService.emit_counter([:f, :c], 2, %{}, namespace: {:test, make_ref()})
      assert_receive {:forwarded, [:f, :c], %{counter: 2}, %{}}
      :ok = TelemetryService.emit_gauge([:f, :g], 1.5, %{})
      assert_receive {:forwarded, [:f, :g], %{gauge: 1.5}, %{}}

      purge_fake_telemetry()
      :ok = TelemetryService.execute([:f, :after], %{}, %{})
      refute_receive {:forwarded, [:f, :after], _, _}, 50
    end

    test "a raising, throwing or exiting :telemetry never breaks the caller" do
      {ns, _} = start()

      for body <- ["raise \"handler boom\"", "throw(:boom)", "exit(:boom)"] do
        define_fake_telemetry(body)
        assert :ok = TelemetryService.execute([:r], %{}, %{}, namespace: ns)
        assert :ok = TelemetryService.emit_counter([:r], %{}, namespace: ns)
      end

      {:ok, metrics} = TelemetryService.get_metrics(namespace: ns)
      assert metrics.r.count == 6
    end
  end

  describe "handlers" do
    test "the default handler debug-logs in the caller; detached names are silent" do
      {ns, _} = start()
      :ok = TelemetryService.attach_handlers([[:h, :x]], namespace: ns)
      level = Logger.level()
      Logger.configure(level: :debug)

      try do
        log =
          capture_log(fn -> TelemetryService.emit_counter([:h, :x], %{k: 1}, namespace: ns) end)

        assert log =~ "Telemetry event [:h, :x]: %{counter: 1} %{k: 1}"
        :ok = TelemetryService.detach_handlers([[:h, :x]], namespace: ns)
        _ = TelemetryService.status(namespace: ns)
        log = capture_log(fn -> TelemetryService.emit_counter([:h, :x], %{}, namespace: ns) end)
        refute log =~ "Telemetry event"
      after
        Logger.configure(level: level)
      end
    end
  end

  describe ":production instance" do
    test "is started by the application, not registered under the module name" do
      assert TelemetryService.available?()
      assert GenServer.whereis(TelemetryService) == nil
      assert {:ok, %{status: :running}} = TelemetryService.status()
    end

    test "its metrics survive a restart by the application supervisor" do
      :ok = TelemetryService.emit_counter([:h5_prod, :kept], 7, %{})
      via = ProcessRegistry.via_tuple(:production, :telemetry_service)
      old = GenServer.whereis(via)
      Process.exit(old, :kill)
      wait_for_restart(via, old)
      assert {:ok, _} = TelemetryService.status()
      {:ok, metrics} = TelemetryService.get_metrics()
      assert %{count: 1, measurements: %{counter: 7}} = metrics.h5_prod.kept
    end
  end
end

defmodule ElixirScope.Foundation.Services.TelemetryServiceSchedulingTest do
  # Call tracing (NativeCalls) is global per function: not async.
  use ExUnit.Case, async: false

  alias ElixirScope.Foundation.Services.TelemetryService
  alias ElixirScope.Foundation.Test.NativeCalls

  setup do
    ns = {:test, make_ref()}
    start_supervised!({TelemetryService, namespace: ns, enable_vm_metrics: false})
    [opts: [namespace: ns]]
  end

  # ~150 KB of metadata: over the 64 KiB normal-scheduler budget.
  defp big_meta do
    %{items: for(i <- 1..4_000, do: {i, "v#{i}", [i / 2]}), pid: self(), ref: make_ref()}
  end

  defp calls(fun), do: fun |> NativeCalls.traced("metrics_") |> elem(1)

  defp metric(opts, path) do
    {:ok, metrics} = TelemetryService.get_metrics(opts)
    get_in(metrics, path)
  end

  test "a new counter name with big metadata is recorded by the dirty twin, exactly", %{opts: o} do
    meta = big_meta()
    emit = fn name, meta -> fn -> TelemetryService.emit_counter(name, 1, meta, o) end end

    # A name no scheduler counted yet misses the cached increment first.
    assert calls(emit.([:t, :small], %{k: 1})) == [
             :metrics_add_cached,
             :metrics_emit_counter_now
           ]

    assert calls(emit.([:t, :big], meta)) == [
             :metrics_add_cached,
             :metrics_emit_counter_now,
             :metrics_emit_counter_dirty
           ]

    # Known name: its metadata is not encoded again, so no dirty hop (a
    # scheduler that did not count it yet fills its cache on a normal one).
    assert [:metrics_add_cached | rest] = calls(emit.([:t, :big], meta))
    assert rest in [[], [:metrics_emit_counter_now]]
    assert calls(emit.([:t, :big], meta)) -- [:metrics_emit_counter_now] == [:metrics_add_cached]

    assert %{count: 3, measurements: %{counter: 3}, metadata: got} = metric(o, [:t, :big])
    assert got === meta
    assert %{count: 1, metadata: %{k: 1}} = metric(o, [:t, :small])
  end

  test "execute/4 with big metadata or measurements goes through metrics_record_dirty", %{opts: o} do
    meta = big_meta()
    measurements = %{duration: 5, trace: meta}
    exec = fn name, m, md -> fn -> TelemetryService.execute(name, m, md, o) end end

    assert calls(exec.([:e, :small], %{duration: 1}, %{k: 1})) == [:metrics_record]

    assert calls(exec.([:e, :meta], %{duration: 1}, meta)) == [
             :metrics_record,
             :metrics_record_dirty
           ]

    # Non-numeric measurements are encoded on every call: bounded too.
    assert calls(exec.([:e, :meas], measurements, %{})) == [
             :metrics_record,
             :metrics_record_dirty
           ]

    assert %{metadata: got} = metric(o, [:e, :meta])
    assert got === meta
    assert %{measurements: %{duration: 5, trace: got}} = metric(o, [:e, :meas])
    assert got === meta
  end
end
