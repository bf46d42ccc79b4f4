defmodule ElixirScope.Foundation.Integration.NamespaceSideEffectsTest do
  # A `{:test, ref}` EventStore / ConfigServer sends its counters and audit
  # events to its own namespace, never to `:production` (the original's test
  # instances leaked them into production). Reads the production metrics
  # and event store, so not async.
  use ExUnit.Case, async: false

  import ElixirScope.Foundation.TestSupport.Eventually

  alias ElixirScope.Foundation.{Events, ProcessRegistry, TestSupervisor}
  alias ElixirScope.Foundation.Services.{ConfigServer, EventStore, TelemetryService}

  setup do
    # Without a production TelemetryService nothing would be recorded there
    # and the "unchanged" assertions below could not fail.
    assert TelemetryService.available?()
    assert EventStore.available?()
    ref = make_ref()
    {:ok, pids} = TestSupervisor.start_isolated_services(ref)
    on_exit(fn -> TestSupervisor.cleanup_namespace(ref) end)
    {:ok, ns: {:test, ref}, pids: pids}
  end

  defp counter(name, opts) do
    {:ok, metrics} = TelemetryService.get_metrics(opts)
    get_in(metrics, [:foundation, name]) || 0
  end

  defp counters(opts \\ []),
    do: Map.new([:events_stored, :config_updates, :config_resets], &{&1, counter(&1, opts)})

  defp event(type, i) do
    {:ok, event} = Events.new_event(type, %{i: i})
    event
  end

  defp stored(type, opts) do
    {:ok, events} = EventStore.query(%{event_type: type}, opts)
    length(events)
  end

  test "events_stored of a test-namespace store counts in that namespace only", %{ns: ns} do
    production = counters()
    opts = [namespace: ns]

    {:ok, _} = EventStore.store(event(:ns_side_effect, 1), opts)

    {:ok, _} =
      EventStore.store_batch([event(:ns_side_effect, 2), event(:ns_side_effect, 3)], opts)

    :ok = EventStore.store_async(event(:ns_side_effect, 4), opts)

    # The server messages sent to the instance's pid act on the same namespace.
    {:ok, store_pid} = ProcessRegistry.lookup(ns, :event_store)
    {:ok, _} = GenServer.call(store_pid, {:store_event, event(:ns_side_effect, 5)})

    # Four store calls (the batch counts once) plus one message.
    assert counter(:events_stored, opts) == 4
    assert counters() == production
    assert eventually(fn -> stored(:ns_side_effect, opts) == 5 end)
    assert stored(:ns_side_effect, []) == 0
  end

  test "ConfigServer audit events and counters stay in its namespace", %{ns: ns} do
    production = counters()
    production_audits = stored(:config_updated, []) + stored(:config_reset, [])
    opts = [namespace: ns]

    :ok = ConfigServer.update([:dev, :debug_mode], true, opts)
    :ok = ConfigServer.reset(opts)

    # The counters are recorded right after the server's reply (casts in
    # the original); the audit events are stored before it.
    assert eventually(fn -> counter(:config_updates, opts) == 1 end)
    assert eventually(fn -> counter(:config_resets, opts) == 1 end)
    # One events_stored count per audit event, in the test namespace.
    assert eventually(fn -> counter(:events_stored, opts) == 2 end)
    assert stored(:config_updated, opts) == 1
    assert stored(:config_reset, opts) == 1

    assert counters() == production
    assert stored(:config_updated, []) + stored(:config_reset, []) == production_audits
  end
end
