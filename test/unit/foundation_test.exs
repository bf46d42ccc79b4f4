defmodule ElixirScope.FoundationTest do
  use ExUnit.Case, async: false

  alias ElixirScope.Foundation
  alias ElixirScope.Foundation.{Config, ServiceRegistry}

  test "version/0 is this library's version" do
    assert Foundation.version() == to_string(Application.spec(:elixir_scope_foundation, :vsn))
    assert Foundation.version() =~ ~r/^\d+\.\d+\.\d+/
  end

  test "initialize/1 is :ok when everything runs and links nothing to the caller" do
    {:links, before} = Process.info(self(), :links)
    assert Foundation.initialize() == :ok
    {:links, after_links} = Process.info(self(), :links)
    assert after_links == before
  end

  test "status/0, health/0 and available?/0 agree" do
    assert {:ok, %{config: c, events: e, telemetry: t}} = Foundation.status()
    for s <- [c, e, t], do: assert(s.status == :running)
    assert Foundation.available?()
    assert {:ok, health} = Foundation.health()
    assert health.status == :healthy
    assert health.foundation_available == true
    assert health.services |> Map.keys() |> Enum.sort() == [:config, :events, :telemetry]
    assert is_integer(health.timestamp)
    assert health.elixir_version == System.version()
    assert health.otp_release == System.otp_release()
  end

  test "status/0 returns the first error; health/0 too" do
    sup = ElixirScope.Foundation.Supervisor
    :ok = Supervisor.terminate_child(sup, ElixirScope.Foundation.Services.EventStore)
    on_exit(fn -> Supervisor.restart_child(sup, ElixirScope.Foundation.Services.EventStore) end)

    assert {:error, %ElixirScope.Foundation.Types.Error{error_type: :service_unavailable}} =
             Foundation.status()

    assert {:error, _} = Foundation.health()
    refute Foundation.available?()
  end

  test "shutdown/0 stops ElixirScope.Foundation.Supervisor; initialize/1 brings it back" do
    sup = Process.whereis(ElixirScope.Foundation.Supervisor)
    assert is_pid(sup)
    ref = Process.monitor(sup)

    assert Foundation.shutdown() == :ok
    assert_receive {:DOWN, ^ref, :process, ^sup, _}, 5_000
    refute Config.available?()
    refute Foundation.available?()
    assert Foundation.shutdown() == :ok

    assert Foundation.initialize() == :ok
    assert is_pid(Process.whereis(ElixirScope.Foundation.Supervisor))
    assert {:ok, _} = ServiceRegistry.wait_for_service(:production, :config_server, 1_000)
    assert Config.get([:ai, :provider]) == {:ok, :mock}
  end
end
