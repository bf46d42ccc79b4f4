defmodule ElixirScope.FoundationTest do
  use ExUnit.Case, async: false

  alias ElixirScope.Foundation
  alias ElixirScope.Foundation.{Config, ServiceRegistry}

  @all_services [ElixirScope.Foundation.Events, ElixirScope.Foundation.Telemetry]

  defp all_services?, do: Enum.all?(@all_services, &Code.ensure_loaded?/1)

  test "version/0 is this library's version" do
    assert Foundation.version() == to_string(Application.spec(:elixir_scope_foundation, :vsn))
    assert Foundation.version() =~ ~r/^\d+\.\d+\.\d+/
  end

  test "initialize/1 is :ok when everything runs and links nothing to the caller" do
    {:links, before} = Process.info(self(), :links)
    if all_services?(), do: assert(Foundation.initialize() == :ok), else: Foundation.initialize()
    {:links, after_links} = Process.info(self(), :links)
    assert after_links == before
  end

  test "status/0, health/0 and available?/0 agree" do
    if all_services?() do
      assert {:ok, %{config: c, events: e, telemetry: t}} = Foundation.status()
      for s <- [c, e, t], do: assert(s.status == :running)
      assert Foundation.available?()
      assert {:ok, health} = Foundation.health()
      assert health.status == :healthy
      assert health.foundation_available == true
      assert is_integer(health.timestamp)
      assert health.elixir_version == System.version()
      assert health.otp_release == System.otp_release()
    else
      refute Foundation.available?()
      assert {:error, %ElixirScope.Foundation.Types.Error{}} = Foundation.status()
    end
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

    Foundation.initialize()
    assert is_pid(Process.whereis(ElixirScope.Foundation.Supervisor))
    assert {:ok, _} = ServiceRegistry.wait_for_service(:production, :config_server, 1_000)
    assert Config.get([:ai, :provider]) == {:ok, :mock}
  end
end
