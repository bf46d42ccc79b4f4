defmodule ElixirScope.Foundation.ApplicationTest do
  use ExUnit.Case, async: false

  alias ElixirScope.Foundation.{ProcessRegistry, ServiceRegistry}
  alias ElixirScope.Foundation.Services.ConfigServer

  @sup ElixirScope.Foundation.Supervisor

  test "the tree runs under ElixirScope.Foundation.Supervisor in the documented order" do
    ids = @sup |> Supervisor.which_children() |> Enum.map(&elem(&1, 0)) |> Enum.reverse()

    expected =
      [ProcessRegistry.Owner, Registry, ElixirScope.Foundation.Cluster, ConfigServer.Table] ++
        Enum.filter(
          [
            ConfigServer,
            ElixirScope.Foundation.Services.EventStore.ReadGate,
            ElixirScope.Foundation.Services.EventStore,
            ElixirScope.Foundation.Services.TelemetryService
          ],
          &Code.ensure_loaded?/1
        ) ++
        [
          ElixirScope.Foundation.TaskSupervisor,
          ElixirScope.Foundation.Config.GracefulDegradation.Owner,
          ElixirScope.Foundation.TestSupervisor
        ]

    assert ids == expected
  end

  test "services are registered in :production through the registry only" do
    assert {:ok, pid} = ServiceRegistry.lookup(:production, :config_server)
    assert Process.whereis(ConfigServer) == nil
    assert [{^pid, _}] = Registry.lookup(ProcessRegistry, {:production, :config_server})
  end

  test "the Task.Supervisor is running" do
    assert Task.Supervisor.async_nolink(ElixirScope.Foundation.TaskSupervisor, fn -> :ran end)
           |> Task.await() == :ran
  end
end
