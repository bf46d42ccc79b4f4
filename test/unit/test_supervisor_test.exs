defmodule ElixirScope.Foundation.TestSupervisorTest do
  use ExUnit.Case, async: false

  alias ElixirScope.Foundation.{ServiceRegistry, TestSupervisor}
  alias ElixirScope.Foundation.Services.{ConfigServer, EventStore, TelemetryService}

  @names %{
    ConfigServer => :config_server,
    EventStore => :event_store,
    TelemetryService => :telemetry_service
  }

  test "isolated services start under the DynamicSupervisor and pass health_check" do
    ref = make_ref()
    ns = {:test, ref}
    assert {:ok, pids} = TestSupervisor.start_isolated_services(ref)
    started = for {m, name} <- @names, Code.ensure_loaded?(m), do: name
    assert length(pids) == length(started)

    for name <- started do
      assert {:ok, pid} = ServiceRegistry.health_check(ns, name)
      assert pid in pids
      assert {:ok, ^pid} = ServiceRegistry.health_check(ns, name, health_check: &Process.alive?/1)
    end

    children = DynamicSupervisor.which_children(TestSupervisor) |> Enum.map(&elem(&1, 1))
    assert Enum.all?(pids, &(&1 in children))

    # Starting again returns the running instance.
    assert {:ok, pid} = TestSupervisor.start_service(ConfigServer, ref)
    assert pid in pids

    assert TestSupervisor.cleanup_namespace(ref) == :ok
    for name <- started, do: assert({:error, _} = ServiceRegistry.lookup(ns, name))
  end

  test "namespaces are independent of production" do
    ref = make_ref()
    {:ok, _} = TestSupervisor.start_service(ConfigServer, ref)
    on_exit(fn -> TestSupervisor.cleanup_namespace(ref) end)
    {:ok, prod} = ServiceRegistry.lookup(:production, :config_server)
    {:ok, iso} = ServiceRegistry.lookup({:test, ref}, :config_server)
    assert prod != iso
  end
end
