defmodule ElixirScope.Foundation.Services.LifecycleTest do
  # Start, stop and presence of the three services, which share this code.
  use ExUnit.Case, async: true

  alias ElixirScope.Foundation.{ProcessRegistry, Sandbox}
  alias ElixirScope.Foundation.Services.{ConfigServer, EventStore, TelemetryService}

  @services [
    {ConfigServer, :config_server},
    {EventStore, :event_store},
    {TelemetryService, :telemetry_service}
  ]

  test "start_link/1 registers each service under its name in the namespace" do
    for {module, name} <- @services do
      namespace = {:test, make_ref()}
      refute module.available?(namespace: namespace)

      {:ok, pid} = module.start_link(namespace: namespace)
      assert GenServer.whereis(ProcessRegistry.via_tuple(namespace, name)) == pid
      assert module.available?(namespace: namespace)

      assert module.start_link(namespace: namespace) == {:error, {:already_started, pid}}

      :ok = GenServer.stop(pid)
      refute module.available?(namespace: namespace)
    end
  end

  test "stop/1 stops a running service and is :ok when none runs" do
    for module <- [ConfigServer, EventStore] do
      namespace = {:test, make_ref()}
      assert module.stop(namespace: namespace) == :ok

      {:ok, pid} = module.start_link(namespace: namespace)
      ref = Process.monitor(pid)
      assert module.stop(namespace: namespace) == :ok
      assert_receive {:DOWN, ^ref, :process, ^pid, _}
      refute module.available?(namespace: namespace)
      assert module.stop(namespace: namespace) == :ok
    end
  end

  test "without :namespace, EventStore starts in the caller's sandbox, the others in :production" do
    namespace = Sandbox.checkout()

    try do
      {:ok, sandboxed} = ProcessRegistry.lookup(namespace, :event_store)
      assert EventStore.start_link([]) == {:error, {:already_started, sandboxed}}

      for {module, name} <- [
            {ConfigServer, :config_server},
            {TelemetryService, :telemetry_service}
          ] do
        {:ok, production} = ProcessRegistry.lookup(:production, name)
        assert module.start_link([]) == {:error, {:already_started, production}}
      end
    after
      Sandbox.checkin()
    end
  end
end
