# Several async modules run the same body at the same time: each asserts
# exact counts on the plain facades, which only holds if every test has its
# own foundation.
defmodule ElixirScope.Foundation.SandboxTest.Counts do
  @moduledoc false

  import ExUnit.Assertions
  import ElixirScope.Foundation.TestSupport.Eventually

  alias ElixirScope.Foundation.{Config, Events, Sandbox, Telemetry}

  def run(namespace, n) do
    assert {:test, ref} = namespace
    assert is_reference(ref)
    assert Sandbox.current() == namespace
    :ok = Config.subscribe()

    for i <- 1..n do
      :ok = Config.update([:ai, :planning, :sampling_rate], i / 100)
      {:ok, event} = Events.new_event(:sandbox_count, %{i: i})
      {:ok, _id} = Events.store(event)
      :ok = Telemetry.emit_counter([:sandbox_test, :hits], %{})
    end

    # Exactly our own notifications, in order, and no other test's.
    for i <- 1..n do
      value = i / 100

      assert_receive {:config_notification,
                      {:config_updated, [:ai, :planning, :sampling_rate], ^value}},
                     5_000
    end

    refute_receive {:config_notification, _}, 50

    assert {:ok, %{updates_count: ^n}} = Config.status()
    last = n / 100
    assert {:ok, ^last} = Config.get([:ai, :planning, :sampling_rate])

    {:ok, metrics} = Telemetry.get_metrics()
    assert metrics.sandbox_test.hits.count == n
    assert metrics.foundation.config_updates == n

    # Our n events plus the n audit events (stored by a worker thread).
    assert eventually(fn ->
             match?({:ok, %{current_event_count: c}} when c == 2 * n, Events.stats())
           end)

    {:ok, own} = Events.query(%{event_type: :sandbox_count})
    assert own |> Enum.map(& &1.data.i) |> Enum.sort() == Enum.to_list(1..n)
    {:ok, audits} = Events.query(%{event_type: :config_updated})
    assert length(audits) == n

    assert eventually(fn ->
             match?(
               {:ok, %{foundation: %{events_stored: c}}} when c == 2 * n,
               Telemetry.get_metrics()
             )
           end)
  end
end

for name <- [CountsA, CountsB, CountsC] do
  defmodule Module.concat(ElixirScope.Foundation.SandboxTest, name) do
    use ElixirScope.Foundation.Case, async: true

    alias ElixirScope.Foundation.SandboxTest.Counts

    test "plain facade calls see only this test's effects", %{foundation_namespace: ns} do
      Counts.run(ns, 25)
    end

    test "a second test of the module starts from zero", %{foundation_namespace: ns} do
      Counts.run(ns, 7)
    end
  end
end

defmodule ElixirScope.Foundation.SandboxTest do
  use ElixirScope.Foundation.Case, async: true

  import ElixirScope.Foundation.TestSupport.Eventually

  alias ElixirScope.Foundation.{Config, Events, ProcessRegistry, Sandbox, Telemetry}
  alias ElixirScope.Foundation.Services.{EventStore, Handles, TelemetryService}
  alias ElixirScope.Foundation.Types.Error

  @services [:config_server, :event_store, :telemetry_service]

  defp event(data), do: elem(Events.new_event(:sandbox_test, data), 1)

  # A process that checks out its own sandbox and waits; `{pid, namespace}`.
  defp other_owner do
    test = self()

    pid =
      spawn(fn ->
        send(test, {:checked_out, Sandbox.checkout()})
        receive do: (:stop -> :ok)
      end)

    assert_receive {:checked_out, ns}, 5_000
    on_exit(fn -> send(pid, :stop) end)
    {pid, ns}
  end

  # A plain process (no `$callers`) that runs functions sent to it.
  defp worker do
    pid = spawn(fn -> worker_loop() end)
    on_exit(fn -> Process.exit(pid, :kill) end)
    pid
  end

  defp worker_loop do
    receive do
      {:run, from, fun} ->
        send(from, {:ran, fun.()})
        worker_loop()
    end
  end

  defp run_in(pid, fun) do
    send(pid, {:run, self(), fun})
    assert_receive {:ran, result}, 5_000
    result
  end

  test "the context carries the namespace, bound to the test process", ctx do
    assert {:test, _} = ns = ctx.foundation_namespace
    assert Sandbox.current() == ns
    assert Sandbox.checkout() == ns, "a second checkout returns the same namespace"
    assert Sandbox.namespace([]) == ns
    for s <- @services, do: assert(ProcessRegistry.registered?(ns, s))
  end

  test "an explicit namespace wins over the sandbox", %{foundation_namespace: ns} do
    assert Sandbox.namespace(namespace: :production) == :production
    :ok = Config.update([:dev, :debug_mode], true)
    assert {:ok, true} = Config.get([:dev, :debug_mode])
    assert {:ok, true} = Config.get([:dev, :debug_mode], namespace: ns)
    assert {:ok, false} = Config.get([:dev, :debug_mode], namespace: :production)
  end

  test "the sandbox's config is built from the application env" do
    # config/config.exs sets ai.provider to :mock for this project's tests.
    assert {:ok, :mock} = Config.get([:ai, :provider])
  end

  test "Tasks, nested Tasks and Task.Supervisor children share the sandbox",
       %{foundation_namespace: ns} do
    inner =
      Task.async(fn ->
        {:ok, _} = Events.store(event(%{from: :task}))

        Task.await(
          Task.async(fn -> {Sandbox.current(), Events.store(event(%{from: :nested}))} end)
        )
      end)

    assert {^ns, {:ok, _}} = Task.await(inner)

    supervised =
      Task.Supervisor.async(ElixirScope.Foundation.TaskSupervisor, fn -> Sandbox.current() end)

    assert Task.await(supervised) == ns
    assert {:ok, events} = Events.query(%{event_type: :sandbox_test})
    assert events |> Enum.map(& &1.data.from) |> Enum.sort() == [:nested, :task]
  end

  test "allow/2 lets another process use the sandbox", %{foundation_namespace: ns} do
    pid = worker()
    assert run_in(pid, &Sandbox.current/0) == :production
    assert Sandbox.allow(self(), pid) == :ok
    assert Sandbox.allow(self(), pid) == :ok, "allowing twice is fine"
    assert run_in(pid, &Sandbox.current/0) == ns
    assert {:ok, _} = run_in(pid, fn -> Events.store(event(%{from: :allowed})) end)
    :ok = run_in(pid, fn -> Telemetry.emit_counter([:sandbox_test, :allowed], %{}) end)
    assert {:ok, [%{data: %{from: :allowed}}]} = Events.query(%{event_type: :sandbox_test})
    assert {:ok, %{sandbox_test: %{allowed: %{count: 1}}}} = Telemetry.get_metrics()

    # An allowed process can allow further processes.
    other = worker()
    assert Sandbox.allow(pid, other) == :ok
    assert run_in(other, &Sandbox.current/0) == ns
  end

  test "allow/2 errors" do
    {other_pid, other_ns} = other_owner()
    pid = worker()
    :ok = Sandbox.allow(self(), pid)
    assert Sandbox.allow(other_pid, pid) == {:error, :already_allowed}
    assert Sandbox.allow(self(), other_pid) == {:error, :already_allowed}
    assert run_in(pid, &Sandbox.current/0) != other_ns

    assert Sandbox.allow(worker(), worker()) == {:error, :not_found}

    assert {:error, %Error{error_type: :invalid_input, message: message}} =
             Sandbox.allow(:not_a_pid, self())

    assert message =~ "expects two pids"
  end

  test "sandboxes are independent of each other and of production",
       %{foundation_namespace: ns} do
    {other_pid, other_ns} = other_owner()
    assert other_ns != ns
    {:ok, _} = Events.store(event(%{}))
    :ok = Telemetry.emit_counter([:sandbox_test, :mine], %{})
    assert {:ok, []} = Events.query(%{event_type: :sandbox_test}, namespace: other_ns)
    assert {:ok, m} = Telemetry.get_metrics(namespace: other_ns)
    refute Map.has_key?(m, :sandbox_test)
    assert {:ok, []} = Events.query(%{event_type: :sandbox_test}, namespace: :production)
    assert Process.alive?(other_pid)
  end

  test "checkin stops the services and removes every trace at once" do
    test = self()

    pid =
      spawn(fn ->
        ns = Sandbox.checkout()
        {:ok, _} = Events.store(event(%{}))
        send(test, {:ns, ns, Sandbox.checkin(), Sandbox.current(), Sandbox.checkin()})
        receive do: (:stop -> :ok)
      end)

    on_exit(fn -> send(pid, :stop) end)
    assert_receive {:ns, ns, :ok, :production, :ok}, 5_000
    for s <- @services, do: assert(ProcessRegistry.lookup(ns, s) == :error)
    assert EventStore.Support.lookup(ns) == nil
    assert Handles.get({TelemetryService, ns}) == nil
    assert :ets.match_object(Sandbox.table(), {:_, ns, :_}) == []
  end

  test "the owner's exit ends the sandbox" do
    test = self()

    pid =
      spawn(fn ->
        ns = Sandbox.checkout()
        pids = for s <- @services, do: elem(ProcessRegistry.lookup(ns, s), 1)
        send(test, {:ns, ns, pids})
      end)

    assert_receive {:ns, ns, pids}, 5_000
    ref = Process.monitor(pid)
    assert_receive {:DOWN, ^ref, :process, ^pid, _}, 5_000
    assert eventually(fn -> not Enum.any?(pids, &Process.alive?/1) end)
    assert eventually(fn -> :ets.match_object(Sandbox.table(), {:_, ns, :_}) == [] end)
    for s <- @services, do: assert(ProcessRegistry.lookup(ns, s) == :error)
    assert EventStore.Support.lookup(ns) == nil
    assert Handles.get({TelemetryService, ns}) == nil
  end

  test "every facade takes namespace: as its last option", %{foundation_namespace: own} do
    {_pid, ns} = other_owner()
    opts = [namespace: ns]
    alias ElixirScope.Foundation

    # Foundation
    assert :ok = Foundation.initialize(opts)
    assert {:ok, %{config: _, events: _, telemetry: _}} = Foundation.status(opts)
    assert Foundation.available?(opts)
    assert {:ok, %{status: :healthy}} = Foundation.health(opts)

    # Config
    assert :ok = Config.initialize(opts)
    assert Config.available?(opts)
    assert :ok = Config.subscribe(opts)
    assert :ok = Config.update([:dev, :debug_mode], true, opts)
    assert_receive {:config_notification, {:config_updated, [:dev, :debug_mode], true}}, 5_000
    assert :ok = Config.safe_update([:dev, :verbose_logging], true, opts)
    assert {:error, %ElixirScope.Foundation.Error{}} = Config.safe_update([:security], 1, opts)
    assert Config.get_with_default([:dev, :debug_mode], :none, opts) == true
    assert Config.get_with_default([:no, :such], :none, opts) == :none
    assert {:ok, %{updates_count: 2}} = Config.status(opts)
    assert :ok = Config.reset(opts)
    assert_receive {:config_notification, {:config_reset, _}}, 5_000
    assert :ok = Config.unsubscribe(opts)
    assert {:ok, %{updates_count: 0}} = Config.status()
    assert {:ok, false} = Config.get([:dev, :debug_mode])

    # Events
    assert :ok = Events.initialize(opts)
    assert Events.available?(opts)
    assert {:ok, %{status: :running}} = Events.status(opts)
    {:ok, id} = Events.store(event(%{n: 1}), opts)
    assert {:ok, %{event_id: ^id}} = Events.get(id, opts)
    assert {:ok, [_]} = Events.query(%{event_type: :sandbox_test}, opts)
    assert {:ok, [_]} = Events.get_recent(10, opts) |> then(&filter_type/1)
    assert {:ok, []} = Events.query(%{event_type: :sandbox_test})

    # Telemetry
    assert :ok = Telemetry.initialize(opts)
    assert Telemetry.available?(opts)
    assert {:ok, %{status: :running}} = Telemetry.status(opts)
    :ok = Telemetry.execute([:sb, :exec], %{v: 1}, %{}, opts)
    :ok = Telemetry.emit_counter([:sb, :counter], %{}, opts)
    :ok = Telemetry.emit_gauge([:sb, :gauge], 3, %{}, opts)
    :measured = Telemetry.measure([:sb, :measure], %{}, fn -> :measured end, opts)
    :timed = Telemetry.time_function(__MODULE__, :timed, fn -> :timed end, opts)
    :ok = Telemetry.emit_performance(:perf, 1.5, %{}, opts)
    :ok = Telemetry.emit_system_event(:boot, %{}, opts)
    assert :ok = Telemetry.attach_handlers([[:sb, :counter]], opts)
    assert :ok = Telemetry.detach_handlers([[:sb, :counter]], opts)

    assert {:ok, %{sb: sb}} = Telemetry.get_metrics(opts)
    assert Map.keys(sb) |> Enum.sort() == [:counter, :exec, :gauge, :measure]

    assert {:ok, %{elixir_scope: %{performance: %{perf: %{count: 1}}}}} =
             Telemetry.get_metrics_for([:elixir_scope, :performance], opts)

    assert {:ok, %{elixir_scope: %{system: %{boot: %{count: 1}}}}} =
             Telemetry.get_metrics_for([:elixir_scope, :system], opts)

    # Nothing of it reached the test's own sandbox.
    assert {:ok, mine} = Telemetry.get_metrics(namespace: own)
    refute Map.has_key?(mine, :sb)
    refute get_in(mine, [:elixir_scope, :performance])
    refute get_in(mine, [:elixir_scope, :system])
  end

  defp filter_type({:ok, events}),
    do: {:ok, Enum.filter(events, &(&1.event_type == :sandbox_test))}

  test "a killed service restarts in the sandbox with its events and metrics",
       %{foundation_namespace: ns} do
    {:ok, id} = Events.store(event(%{kept: true}))
    :ok = Telemetry.emit_counter([:sandbox_test, :kept], %{})

    for service <- [:event_store, :telemetry_service] do
      {:ok, pid} = ProcessRegistry.lookup(ns, service)
      Process.exit(pid, :kill)

      assert eventually(fn ->
               match?({:ok, new} when new != pid, ProcessRegistry.lookup(ns, service))
             end)
    end

    assert {:ok, %{data: %{kept: true}}} = Events.get(id)

    assert eventually(fn ->
             match?({:ok, %{sandbox_test: %{kept: %{count: 1}}}}, Telemetry.get_metrics())
           end)

    :ok = Telemetry.emit_counter([:sandbox_test, :kept], %{})
    assert {:ok, %{sandbox_test: %{kept: %{count: 2}}}} = Telemetry.get_metrics()
  end

  test "test-namespace handles are never in :persistent_term", %{foundation_namespace: ns} do
    keys = for {key, _} <- :persistent_term.get(), do: key
    refute {EventStore, ns} in keys
    refute {TelemetryService, ns} in keys
    assert %{handle: _} = EventStore.Support.lookup(ns)
    assert {_handle, _pid} = Handles.get({TelemetryService, ns})
  end
end

defmodule ElixirScope.Foundation.SandboxSharedTest do
  # Not async: the Case checks out in shared mode.
  use ElixirScope.Foundation.Case

  alias ElixirScope.Foundation.{Events, Sandbox}

  test "shared mode: processes of no sandbox use the owner's", %{foundation_namespace: ns} do
    test = self()

    spawn(fn ->
      {:ok, e} = Events.new_event(:shared_test, %{})
      send(test, {:ran, Sandbox.current(), Events.store(e)})
    end)

    assert_receive {:ran, ^ns, {:ok, _}}, 5_000
    assert {:ok, [_]} = Events.query(%{event_type: :shared_test})

    # A process with its own sandbox keeps it.
    spawn(fn ->
      own = Sandbox.checkout()
      send(test, {:own, own, Sandbox.current(), Sandbox.supervisor()})
    end)

    assert_receive {:own, own, own, sup}, 5_000
    assert own != ns
    # Its sandbox ends with it (waited for: this module is not async).
    ref = Process.monitor(sup)
    assert_receive {:DOWN, ^ref, :process, ^sup, _}, 5_000
  end

  test "the shared sandbox ends with its owner" do
    test = self()

    spawn(fn ->
      ns = Sandbox.checkout(shared: true)
      send(test, {:ns, ns})
      :ok = Sandbox.checkin()
      send(test, :checked_in)
    end)

    assert_receive {:ns, other}, 5_000
    assert_receive :checked_in, 5_000
    # The last shared checkout won; its checkin ended shared mode.
    assert :ets.match_object(Sandbox.table(), {:_, other, :_}) == []
    spawn(fn -> send(test, {:current, Sandbox.current()}) end)
    assert_receive {:current, :production}, 5_000
  end
end
