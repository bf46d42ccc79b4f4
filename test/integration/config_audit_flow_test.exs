defmodule ElixirScope.Foundation.Integration.ConfigAuditFlowTest do
  # Config update -> subscriber message -> audit event queryable -> counter incremented.
  use ExUnit.Case, async: false

  import ElixirScope.Foundation.TestSupport.Eventually

  alias ElixirScope.Foundation.{Config, Events, ServiceRegistry, Telemetry}
  alias ElixirScope.Foundation.Services.{ConfigServer, EventStore}

  setup do
    :ok = ConfigServer.reset_state()
    :ok = EventStore.reset_state()
    on_exit(fn -> ConfigServer.reset_state() end)
    :ok
  end

  defp counter(name) do
    {:ok, metrics} = Telemetry.get_metrics()
    get_in(metrics, [:foundation, name]) || 0
  end

  defp counter_grows?(name, before), do: eventually(fn -> counter(name) >= before + 1 end)

  defp audit_events(type) do
    {:ok, events} = Events.query(%{event_type: type})
    events
  end

  test "update flows to the subscriber, the event store and the metrics" do
    before = counter(:config_updates)
    :ok = Config.subscribe()
    wall_before = DateTime.utc_now()

    assert Config.update([:dev, :debug_mode], true) == :ok
    wall_after = DateTime.utc_now()
    assert_receive {:config_notification, {:config_updated, [:dev, :debug_mode], true}}, 1_000

    assert eventually(fn ->
             Enum.any?(audit_events(:config_updated), fn e ->
               e.data.path == [:dev, :debug_mode] and e.data.new_value == true
             end)
           end)

    [event | _] = audit_events(:config_updated)
    assert event.data.previous_value == {:ok, false}
    assert is_integer(event.data.timestamp)
    {:ok, server} = ServiceRegistry.lookup(:production, :config_server)
    assert event.pid == server
    assert event.node == node() and event.correlation_id == nil and event.parent_id == nil
    assert %DateTime{time_zone: "Etc/UTC", microsecond: {_, 6}} = event.wall_time
    assert DateTime.compare(event.wall_time, wall_before) != :lt
    assert DateTime.compare(event.wall_time, wall_after) != :gt

    assert counter_grows?(:config_updates, before)
  end

  test "each of several updates stores one queryable audit event" do
    for i <- 1..10, do: :ok = Config.update([:interface, :max_results], 100 + i)

    assert eventually(fn ->
             values =
               for e <- audit_events(:config_updated),
                   e.data.path == [:interface, :max_results],
                   do: e.data.new_value

             Enum.sort(values) == Enum.to_list(101..110)
           end)

    {:ok, status} = ConfigServer.status()
    assert status.audit_failures == 0
  end

  test "reset flows to the subscriber, the event store and the metrics" do
    :ok = Config.update([:dev, :debug_mode], true)
    before = counter(:config_resets)
    :ok = Config.subscribe()

    assert Config.reset() == :ok
    assert_receive {:config_notification, {:config_reset, _config}}, 1_000

    assert eventually(fn ->
             Enum.any?(audit_events(:config_reset), &(&1.data.reset_from_updates_count >= 1))
           end)

    assert counter_grows?(:config_resets, before)
  end

  test "failed updates store no event and send no message" do
    :ok = Config.subscribe()
    {:error, _} = Config.update([:ai, :planning, :sampling_rate], 1.5)
    refute_receive {:config_notification, _}, 50

    refute Enum.any?(
             audit_events(:config_updated),
             &(&1.data.path == [:ai, :planning, :sampling_rate])
           )
  end
end
