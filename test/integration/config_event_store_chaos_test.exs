defmodule ElixirScope.Foundation.Integration.ConfigEventStoreChaosTest do
  # ConfigServer never waits on, nor crashes with, the EventStore.
  use ExUnit.Case, async: false

  alias ElixirScope.Foundation.{Config, ServiceRegistry, TestSupervisor}
  alias ElixirScope.Foundation.Services.{ConfigServer, EventStore}

  @sup ElixirScope.Foundation.Supervisor

  setup do
    :ok = ConfigServer.reset_state()

    on_exit(fn ->
      Supervisor.restart_child(@sup, EventStore)
      ConfigServer.reset_state()
    end)

    {:ok, server} = ServiceRegistry.lookup(:production, :config_server)
    {:ok, server: server}
  end

  defp audits(status), do: status.audit_sent + status.audit_failures + status.audit_skipped

  test "updates complete while the EventStore process is suspended", %{server: server} do
    {:ok, store} = ServiceRegistry.lookup(:production, :event_store)
    :sys.suspend(store)

    try do
      # If ConfigServer called into the suspended store, the first update would
      # time out (5 s) and crash it.
      for i <- 1..20, do: assert(Config.update([:interface, :max_results], 200 + i) == :ok)
    after
      :sys.resume(store)
    end

    assert Config.get([:interface, :max_results]) == {:ok, 220}
    assert ServiceRegistry.lookup(:production, :config_server) == {:ok, server}
  end

  # Runs in an isolated namespace: killing the production EventStore this often
  # would exceed the application supervisor's restart intensity (3 in 5 s).
  test "updates succeed while the EventStore is killed over and over" do
    ref = make_ref()
    ns = {:test, ref}
    {:ok, server} = TestSupervisor.start_service(ConfigServer, ref)
    on_exit(fn -> TestSupervisor.cleanup_namespace(ref) end)

    {:ok, s0} = ConfigServer.status(namespace: ns)
    killer = Task.async(fn -> kill_loop(ns, System.monotonic_time(:millisecond) + 1_000) end)

    results =
      for i <- 1..300,
          do: ConfigServer.update([:interface, :max_results], 1 + rem(i, 50), namespace: ns)

    kills = Task.await(killer, 5_000)
    assert kills > 5
    assert Enum.all?(results, &(&1 == :ok))
    assert ServiceRegistry.lookup(ns, :config_server) == {:ok, server}

    {:ok, s1} = ConfigServer.status(namespace: ns)
    assert s1.updates_count == s0.updates_count + 300
    # Every update's audit event was either handed off or counted as failed/skipped.
    assert audits(s1) == audits(s0) + 300
  end

  test "updates succeed with no EventStore at all; skipped audits are counted", %{server: server} do
    :ok = Supervisor.terminate_child(@sup, EventStore)
    {:ok, s0} = ConfigServer.status()
    for _ <- 1..5, do: assert(Config.update([:dev, :debug_mode], true) == :ok)
    {:ok, s1} = ConfigServer.status()
    assert s1.audit_skipped == s0.audit_skipped + 5
    assert ServiceRegistry.lookup(:production, :config_server) == {:ok, server}
  end

  # Starts the namespace's EventStore, kills it, starts it again, ... until the
  # deadline; returns the number of kills.
  defp kill_loop(ns, deadline) do
    Process.flag(:trap_exit, true)
    kill_loop(ns, deadline, 0)
  end

  defp kill_loop(ns, deadline, kills) do
    if System.monotonic_time(:millisecond) >= deadline do
      kills
    else
      {:ok, pid} = EventStore.start_link(namespace: ns)
      Process.sleep(3)
      Process.exit(pid, :kill)
      receive do: ({:EXIT, ^pid, _} -> :ok)
      kill_loop(ns, deadline, kills + 1)
    end
  end
end
