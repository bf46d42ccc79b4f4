defmodule ElixirScope.Foundation.Integration.SubscriptionsTest do
  # Live subscriptions through the public API. Most tests use their own
  # namespace; the ones about the EventStore process, telemetry and a
  # normal stop use :production, so the module is not async.
  use ExUnit.Case, async: false

  alias ElixirScope.Foundation.{Events, ProcessRegistry}
  alias ElixirScope.Foundation.Services.{ConfigServer, EventStore, TelemetryService}
  alias ElixirScope.Foundation.Types.{Error, Event}
  import ElixirScope.Foundation.TestSupport.Eventually

  @event [:elixir_scope, :foundation, :subscription]

  defp isolated(opts \\ []) do
    ns = {:test, make_ref()}
    spec = Supervisor.child_spec({EventStore, [namespace: ns] ++ opts}, restart: :temporary)
    start_supervised!(spec)
    [namespace: ns]
  end

  defp event(id, type, cid \\ nil) do
    Event.new(event_id: id, event_type: type, timestamp: id, correlation_id: cid, data: %{i: id})
  end

  # Receives the ids of `ref`'s events until `n` arrived or `quiet` ms pass
  # without a message, acknowledging each batch when `ack` is true; returns
  # `{ids, dropped}` in arrival order.
  defp receive_ids(ref, n, opts \\ []) do
    quiet = Keyword.get(opts, :quiet, 2000)
    ack = Keyword.get(opts, :ack, true)
    do_receive(ref, n, quiet, ack, [], 0)
  end

  defp do_receive(_ref, n, _quiet, _ack, ids, dropped) when length(ids) >= n,
    do: {ids, dropped}

  defp do_receive(ref, n, quiet, ack, ids, dropped) do
    receive do
      {:foundation_events, ^ref, events} ->
        if ack, do: :ok = Events.ack(ref, length(events))
        do_receive(ref, n, quiet, ack, ids ++ Enum.map(events, & &1.event_id), dropped)

      {:foundation_events_dropped, ^ref, count} ->
        do_receive(ref, n, quiet, ack, ids, dropped + count)
    after
      quiet -> {ids, dropped}
    end
  end

  defp metric(name, opts \\ []) do
    {:ok, metrics} = TelemetryService.get_metrics(opts)
    get_in(metrics, @event ++ [name]) || %{}
  end

  # Kills the namespace's EventStore process (not `previous`) and returns
  # the pid killed once its successor is registered.
  defp kill_store(ns, previous) do
    pid =
      wait_until(fn ->
        case ProcessRegistry.lookup(ns, :event_store) do
          {:ok, pid} when pid != previous -> pid
          _ -> nil
        end
      end)

    Process.exit(pid, :kill)
    wait_until(fn -> match?({:ok, p} when p != pid, ProcessRegistry.lookup(ns, :event_store)) end)
    pid
  end

  describe "delivery" do
    test "concurrent writers reach several subscribers, each exactly its filter" do
      opts = isolated()
      parent = self()

      filters = %{
        all: %{},
        type: %{event_type: :b},
        cid: [correlation_id: "g1"],
        both: %{event_type: :a, correlation_id: "g2"}
      }

      subscribers =
        for {name, filter} <- filters do
          pid =
            spawn_link(fn ->
              {:ok, ref} = Events.subscribe(filter, opts)
              send(parent, {:ready, name})
              {ids, dropped} = receive_ids(ref, 100_000, quiet: 1500)
              send(parent, {:got, name, ids, dropped})
            end)

          assert_receive {:ready, ^name}
          {name, pid}
        end

      writers = 4
      per = 500

      stored =
        1..writers
        |> Enum.map(fn w ->
          Task.async(fn ->
            for i <- 1..per do
              id = w * 100_000 + i
              e = event(id, Enum.at([:a, :b], rem(i, 2)), "g#{rem(i, 3)}")

              if rem(i, 5) == 0,
                do: {:ok, [^id]} = EventStore.store_batch([e], opts),
                else: {:ok, ^id} = EventStore.store(e, opts)

              e
            end
          end)
        end)
        |> Enum.flat_map(&Task.await(&1, 30_000))

      expect = fn
        :all -> stored
        :type -> Enum.filter(stored, &(&1.event_type == :b))
        :cid -> Enum.filter(stored, &(&1.correlation_id == "g1"))
        :both -> Enum.filter(stored, &(&1.event_type == :a and &1.correlation_id == "g2"))
      end

      for {name, _pid} <- subscribers do
        assert_receive {:got, ^name, ids, 0}, 10_000
        want = expect.(name) |> Enum.map(& &1.event_id)
        assert Enum.sort(ids) == Enum.sort(want), "#{name}: wrong set"
        assert length(Enum.uniq(ids)) == length(ids), "#{name}: duplicates"

        # Each writer's events arrive in the order it stored them.
        for w <- 1..writers do
          mine = Enum.filter(ids, &(div(&1, 100_000) == w))
          assert mine == Enum.sort(mine), "#{name}: writer #{w} out of order"
        end
      end
    end

    test "an overwrite of an existing id is delivered again" do
      opts = isolated()
      {:ok, ref} = Events.subscribe(%{}, opts)
      {:ok, 1} = EventStore.store(event(1, :a), opts)
      {:ok, 1} = EventStore.store(event(1, :b), opts)
      assert {[1, 1], 0} = receive_ids(ref, 2)
    end
  end

  describe "catch-up (from: :start)" do
    test "stored events come first, then live ones racing with the subscribe, none twice" do
      opts = isolated()
      stored = for id <- 1..3000, do: event(id, if(rem(id, 2) == 0, do: :even, else: :odd))
      {:ok, _} = EventStore.store_batch(stored, opts)

      writers =
        for w <- 1..3 do
          Task.async(fn ->
            for i <- 1..1000 do
              {:ok, _} = EventStore.store(event(w * 10_000 + i, :even), opts)
            end
          end)
        end

      {:ok, ref} =
        Events.subscribe(%{event_type: :even}, opts ++ [from: :start, max_in_flight: 300])

      Enum.each(writers, &Task.await(&1, 30_000))

      {ids, dropped} = receive_ids(ref, 1500 + 3000)
      assert dropped == 0
      assert length(ids) == 1500 + 3000
      assert length(Enum.uniq(ids)) == length(ids)
      # What was stored before the subscribe, in arrival order, first.
      assert Enum.take(ids, 1500) == Enum.filter(1..3000, &(rem(&1, 2) == 0))
    end

    test "an empty store has nothing to catch up" do
      opts = isolated()
      {:ok, ref} = Events.subscribe(%{}, opts ++ [from: :start])
      {:ok, _} = EventStore.store(event(5, :a), opts)
      assert {[5], 0} = receive_ids(ref, 1)
    end
  end

  describe "catch-up with a warm (disk) tier" do
    setup do
      dir = Path.join(System.tmp_dir!(), "subs-warm-#{System.unique_integer([:positive])}")
      on_exit(fn -> File.rm_rf!(dir) end)
      %{dir: dir}
    end

    defp warm_store(dir) do
      ns = {:test, make_ref()}
      opts = [namespace: ns, warm: [path: dir, compression: :zstd], max_events: 100]
      start_supervised!(Supervisor.child_spec({EventStore, opts}, id: ns, restart: :temporary))
      [namespace: ns]
    end

    test "from: :start covers events only on disk, from earlier lifetimes too", %{dir: dir} do
      first = warm_store(dir)
      {:ok, _} = EventStore.store_batch(for(id <- 1..600, do: event(id, :w)), first)
      :ok = EventStore.stop(first)

      opts = warm_store(dir)
      {:ok, _} = EventStore.store_batch(for(id <- 601..1000, do: event(id, :w)), opts)
      # The memory tier holds only the newest 100: the rest are on disk only.
      assert {:ok, %{evicted_max_events: 300}} = EventStore.stats(opts)

      writer =
        Task.async(fn ->
          for id <- 1001..1300, do: {:ok, ^id} = EventStore.store(event(id, :w), opts)
        end)

      {:ok, ref} = Events.subscribe(%{event_type: :w}, opts ++ [from: :start])
      Task.await(writer, 30_000)

      {ids, 0} = receive_ids(ref, 1300)
      assert Enum.sort(ids) == Enum.to_list(1..1300)
      assert length(Enum.uniq(ids)) == 1300
      # What was on disk when it subscribed comes first, in time order.
      assert Enum.take(ids, 1000) == Enum.to_list(1..1000)
    end
  end

  describe "flow control" do
    test "a stalled subscriber gets at most max_in_flight, then the drops, then the newest" do
      opts = isolated()
      {:ok, ref} = Events.subscribe(%{}, opts ++ [max_in_flight: 10, buffer: 50])

      for id <- 1..10, do: {:ok, _} = EventStore.store(event(id, :a), opts)
      assert {Enum.to_list(1..10), 0} == receive_ids(ref, 10, ack: false)

      for id <- 11..500, do: {:ok, _} = EventStore.store(event(id, :a), opts)
      refute_receive {:foundation_events, ^ref, _}, 200

      :ok = Events.ack(ref, 10)
      {rest, dropped} = receive_ids(ref, 1000, quiet: 500)
      assert dropped == 490 - 50
      assert rest == Enum.to_list(451..500)
    end

    test "writers are not held up by a subscriber that never reads" do
      opts = isolated()
      parent = self()

      stalled =
        spawn(fn ->
          {:ok, _} = Events.subscribe(%{}, opts ++ [max_in_flight: 1, buffer: 1])
          send(parent, :subscribed)
          Process.sleep(:infinity)
        end)

      assert_receive :subscribed
      for id <- 1..20_000, do: {:ok, ^id} = EventStore.store(event(id, :a), opts)
      assert {:ok, %{current_event_count: 20_000}} = EventStore.stats(opts)
      # One event delivered (perhaps after a drop notice), nothing more
      # until it is acknowledged.
      {:messages, messages} = Process.info(stalled, :messages)

      assert [{:foundation_events, _ref, [_one]}] =
               Enum.reject(messages, &(elem(&1, 0) == :foundation_events_dropped))

      Process.exit(stalled, :kill)
    end
  end

  describe "lifecycle" do
    test "unsubscribe stops delivery and is idempotent" do
      opts = isolated()
      {:ok, ref} = Events.subscribe(%{}, opts)
      {:ok, _} = EventStore.store(event(1, :a), opts)
      assert {[1], 0} = receive_ids(ref, 1)
      assert :ok = Events.unsubscribe(ref)
      assert :ok = Events.unsubscribe(ref)
      assert :ok = Events.ack(ref, 1)
      {:ok, _} = EventStore.store(event(2, :a), opts)
      refute_receive {:foundation_events, ^ref, _}, 200
    end

    test "a dead subscriber's subscription ends (telemetry :stop, reason :subscriber_down)" do
      before = Map.get(metric(:stop), :count, 0)
      parent = self()

      pid =
        spawn(fn ->
          {:ok, ref} = Events.subscribe(%{event_type: :sub_dead})
          send(parent, {:ref, ref})
          receive do: (:exit -> :ok)
        end)

      assert_receive {:ref, _ref}
      send(pid, :exit)
      wait_until(fn -> Map.get(metric(:stop), :count, 0) > before end)
    end

    test "a subscription survives a kill of the EventStore process; its new process monitors again" do
      # Its own namespace, restarted by the test's supervisor (killing the
      # :production services counts against the application's restart limit).
      ns = {:test, make_ref()}
      opts = [namespace: ns]
      start_supervised!(Supervisor.child_spec({TelemetryService, opts}, id: :telemetry))
      start_supervised!(Supervisor.child_spec({EventStore, opts}, id: :event_store))
      stops = fn -> Map.get(metric(:stop, opts), :count, 0) end

      {:ok, ref} = Events.subscribe(%{event_type: :sub_kill}, opts)
      old = kill_store(ns, nil)
      {:ok, id} = EventStore.store(event(1, :sub_kill), opts)
      assert {[^id], 0} = receive_ids(ref, 1)

      # A subscriber that subscribes now and exits after the next kill:
      # only the newest process's own monitors can see it go.
      parent = self()

      pid =
        spawn(fn ->
          {:ok, r} = Events.subscribe(%{event_type: :sub_kill}, opts)
          send(parent, {:sub, r})
          receive do: (:exit -> :ok)
        end)

      assert_receive {:sub, _}
      before = stops.()
      _ = kill_store(ns, old)
      send(pid, :exit)
      wait_until(fn -> stops.() > before end)
      :ok = Events.unsubscribe(ref)
    end

    test "a normal stop of the store ends subscriptions with :store_stopped" do
      opts = isolated()
      {:ok, ref} = Events.subscribe(%{}, opts)
      :ok = EventStore.stop(opts)
      assert_receive {:foundation_subscription_ended, ^ref, :store_stopped}, 2000
    end
  end

  describe "arguments and settings" do
    test "bad filters and options are invalid_input errors naming the culprit" do
      opts = isolated()

      for {filter, sub_opts, culprit} <- [
            {%{type: :a}, [], ":type"},
            {%{event_type: "a"}, [], ":event_type"},
            {%{correlation_id: 7}, [], ":correlation_id"},
            {:all, [], ":filter"},
            {%{}, [from: :later], ":from"},
            {%{}, [max_in_flight: 0], ":max_in_flight"},
            {%{}, [buffer: -1], ":buffer"},
            {%{}, [bogus: 1], ":bogus"}
          ] do
        assert {:error, %Error{error_type: :invalid_input, message: message}} =
                 Events.subscribe(filter, opts ++ sub_opts)

        assert message =~ culprit
      end
    end

    test "interface.enable_streaming: false forbids subscriptions (code 3003)" do
      opts = isolated()

      spec =
        {ConfigServer,
         opts ++ [interface: %{enable_streaming: false, max_results: 1000, query_timeout: 10_000}]}

      start_supervised!(Supervisor.child_spec(spec, restart: :temporary))

      assert {:error, %Error{error_type: :operation_forbidden, code: 3003}} =
               Events.subscribe(%{}, opts)
    end

    test "start and dropped are reported as telemetry" do
      starts = Map.get(metric(:start), :count, 0)
      drops = Map.get(metric(:dropped), :count, 0)
      :ok = EventStore.initialize()
      {:ok, ref} = Events.subscribe(%{event_type: :sub_telemetry}, max_in_flight: 1, buffer: 1)
      assert Map.get(metric(:start), :count, 0) == starts + 1

      for n <- 1..5 do
        {:ok, e} = Events.new_event(:sub_telemetry, %{n: n})
        {:ok, _} = Events.store(e)
      end

      {_ids, dropped} = receive_ids(ref, 5, quiet: 500)
      assert dropped > 0
      wait_until(fn -> Map.get(metric(:dropped), :count, 0) > drops end)
      :ok = Events.unsubscribe(ref)
    end
  end
end
