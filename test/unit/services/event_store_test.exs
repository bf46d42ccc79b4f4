defmodule ElixirScope.Foundation.Services.EventStoreTest do
  # Touches the :production instance and app env: not async.
  use ExUnit.Case, async: false

  alias ElixirScope.Foundation.Services.EventStore
  alias ElixirScope.Foundation.Types.{Error, Event}
  import ElixirScope.Foundation.TestSupport.Eventually

  setup do
    :ok = EventStore.initialize()
    :ok = EventStore.reset_state()
    :ok
  end

  defp event(id, fields \\ []) do
    Event.new([event_id: id, event_type: :test] ++ fields)
  end

  defp ids({:ok, events}), do: Enum.map(events, & &1.event_id)

  defp start_isolated(opts \\ []) do
    ns = {:test, make_ref()}

    start_supervised!(
      Supervisor.child_spec({EventStore, [namespace: ns] ++ opts}, restart: :temporary)
    )

    [namespace: ns]
  end

  defp os_threads do
    [_, n] = Regex.run(~r/^Threads:\s+(\d+)/m, File.read!("/proc/self/status"))
    String.to_integer(n)
  end

  # Thread ids of the stores' async workers ("event_store_async", cut to
  # the kernel's 15 bytes).
  defp worker_threads do
    for tid <- File.ls!("/proc/self/task"),
        File.read("/proc/self/task/#{tid}/comm") == {:ok, "event_store_asy\n"},
        do: tid
  end

  describe "store/1 and get/1" do
    test "returns the event's own id and round-trips every field" do
      e =
        event(123,
          correlation_id: "c",
          parent_id: 7,
          data: %{p: self(), r: make_ref(), l: [1, "x"]}
        )

      assert {:ok, 123} = EventStore.store(e)
      assert {:ok, ^e} = EventStore.get(123)
    end

    test "invalid events are rejected with the validator's error" do
      assert {:error, %Error{error_type: :validation_failed, message: "Event ID cannot be nil"}} =
               EventStore.store(Event.empty())

      assert {:error, %Error{error_type: :type_mismatch}} =
               EventStore.store(%{event(1) | event_id: "1"})
    end

    test "storing an existing id overwrites it and cleans its indexes" do
      {:ok, 5} = EventStore.store(event(5, event_type: :type_a, correlation_id: "old"))
      {:ok, 5} = EventStore.store(event(5, event_type: :type_b))
      assert {:ok, %Event{event_type: :type_b}} = EventStore.get(5)
      assert {:ok, []} = EventStore.get_by_correlation("old")
      assert {:ok, []} = EventStore.query(%{event_type: :type_a})
      assert {:ok, %{current_event_count: 1}} = EventStore.stats()
    end

    test "missing ids give a 3001 :not_found error" do
      assert {:error,
              %Error{code: 3001, error_type: :not_found, severity: :low, context: %{event_id: 42}}} =
               EventStore.get(42)

      assert {:error, %Error{error_type: :not_found}} = EventStore.get(0xFFFF_FFFF_FFFF_FFFF + 1)
    end

    test "non-positive ids raise FunctionClauseError in the caller" do
      assert_raise FunctionClauseError, fn -> EventStore.get(0) end
      assert_raise FunctionClauseError, fn -> EventStore.get("1") end
    end

    test "ids beyond 64 bits are refused" do
      assert {:error, %Error{error_type: :invalid_input}} =
               EventStore.store(event(0xFFFF_FFFF_FFFF_FFFF + 1))
    end
  end

  describe "store_batch/1" do
    test "returns ids in input order" do
      assert {:ok, [3, 1, 2]} = EventStore.store_batch(Enum.map([3, 1, 2], &event/1))
      assert {:ok, []} = EventStore.store_batch([])
      assert {:ok, %{events_stored: 3}} = EventStore.stats()
    end

    test "large batches are chunked but stay all-or-nothing" do
      big = for i <- 1..300, do: event(i, correlation_id: "big")
      assert {:ok, ids} = EventStore.store_batch(big)
      assert ids == Enum.to_list(1..300)
      assert length(ids(EventStore.get_by_correlation("big"))) == 300
      assert length(ids(EventStore.query(%{limit: 1000}))) == 300

      bad = for(i <- 301..400, do: event(i)) ++ [event(0xFFFF_FFFF_FFFF_FFFF + 1)]
      assert {:error, %Error{error_type: :invalid_input}} = EventStore.store_batch(bad)
      assert {:ok, %{current_event_count: 300}} = EventStore.stats()
    end

    test "one invalid event means nothing is stored" do
      batch = [event(1), Event.empty(), event(3)]
      assert {:error, %Error{error_type: :validation_failed}} = EventStore.store_batch(batch)
      assert {:ok, %{current_event_count: 0}} = EventStore.stats()

      # In the last of several chunks, too.
      long = for(i <- 1..400, do: event(i)) ++ [%{event(401) | pid: :not_a_pid}]
      assert {:error, %Error{error_type: :type_mismatch}} = EventStore.store_batch(long)
      assert {:ok, %{current_event_count: 0}} = EventStore.stats()
    end

    test "data whose size bound is near the limit is measured exactly" do
      # 1 000 pids: a few KB in the store, but each pid counts the largest
      # external form a pid can take, so only the exact size can tell.
      e = event(7, data: List.duplicate(self(), 1000))

      assert {{:ok, 7}, [:store_put_counted, :store_put_dirty]} =
               store_calls(fn -> EventStore.store(e) end)

      assert {:ok, ^e} = EventStore.get(7)
    end
  end

  describe "query/1" do
    setup do
      for i <- 1..10 do
        type = if rem(i, 2) == 0, do: :type_a, else: :type_b
        {:ok, _} = EventStore.store(event(i, event_type: type, timestamp: 100 - i))
      end

      :ok
    end

    test "filters by type, ascending id by default" do
      assert ids(EventStore.query(%{event_type: :type_a})) == [2, 4, 6, 8, 10]
      assert ids(EventStore.query(%{event_type: "type_a"})) == []
      assert ids(EventStore.query(%{event_type: :nope})) == []
    end

    test "time_range is inclusive; order_by timestamp ascending" do
      q = %{time_range: {92, 95}, order_by: :timestamp}
      assert ids(EventStore.query(q)) == [8, 7, 6, 5]
      assert ids(EventStore.query(%{time_range: {95, 92}})) == []
    end

    test "limit, offset and order_by :event_id" do
      assert ids(EventStore.query(%{limit: 3, offset: 2, order_by: :event_id})) == [3, 4, 5]
      assert ids(EventStore.query(%{limit: 0, offset: -1})) == Enum.to_list(1..10)
      assert ids(EventStore.query(%{order_by: :timestamp, limit: 2})) == [10, 9]
      assert ids(EventStore.query(%{order_by: :timestamp_desc, limit: 2})) == [1, 2]
    end

    test "unordered queries: ascending id up to 32 events, time-index order beyond" do
      opts = start_isolated(max_events: 0)
      # Ids ascend while timestamps descend, so the two orders differ.
      for i <- 1..32, do: {:ok, _} = EventStore.store(event(i, timestamp: 1000 - i), opts)
      assert ids(EventStore.query(%{limit: 3}, opts)) == [1, 2, 3]

      {:ok, _} = EventStore.store(event(33, timestamp: 1000 - 33), opts)
      assert ids(EventStore.query(%{limit: 3}, opts)) == [33, 32, 31]
      assert ids(EventStore.query(%{order_by: :event_id, limit: 3}, opts)) == [1, 2, 3]
      assert ids(EventStore.query(%{order_by: :bogus, offset: 31}, opts)) == [2, 1]
      q = %{event_type: :test, time_range: {900, 1000}, limit: 2}
      assert ids(EventStore.query(q, opts)) == [33, 32]
    end

    test "unknown keys are ignored; malformed values are errors, not crashes" do
      assert length(ids(EventStore.query(%{correlation_id: "x", foo: 1}))) == 10

      for bad <- [%{time_range: :x}, %{offset: "1"}, %{limit: 1.5}] do
        assert {:error, %Error{error_type: :invalid_input}} = EventStore.query(bad)
      end
    end
  end

  describe "get_by_correlation/1 and prune_before/1" do
    test "correlation groups come back timestamp-ascending" do
      for {id, ts} <- [{1, 30}, {2, 10}, {3, 20}] do
        {:ok, _} = EventStore.store(event(id, correlation_id: "g", timestamp: ts))
      end

      {:ok, _} = EventStore.store(event(4, correlation_id: "other"))
      assert ids(EventStore.get_by_correlation("g")) == [2, 3, 1]
      assert {:ok, []} = EventStore.get_by_correlation("none")
    end

    test "prune is strict and counted" do
      {:ok, _} = EventStore.store_batch(for i <- 1..10, do: event(i, timestamp: i))
      assert {:ok, 4} = EventStore.prune_before(5)
      assert ids(EventStore.query(%{})) == Enum.to_list(5..10)
      assert {:ok, %{events_pruned: 4, current_event_count: 6}} = EventStore.stats()
    end

    test "a big shard is pruned on a dirty scheduler; groups read right before and after" do
      # One shard of 30 000 events: past the normal-scheduler size, and far
      # more events than groups (the groups are cut after the call).
      ns = start_isolated(shards: 1, max_events: 100_000)
      n = 30_000
      cid = fn i -> "g#{rem(i, 7)}" end

      for chunk <- Enum.chunk_every(1..n, 1_000) do
        batch = for i <- chunk, do: event(i, timestamp: i, correlation_id: cid.(i))
        {:ok, _} = EventStore.store_batch(batch, ns)
      end

      assert {:ok, 19_999} = EventStore.prune_before(20_000, ns)
      # Stored after the prune, older than its cut: still read.
      {:ok, _} = EventStore.store(event(n + 1, timestamp: 5, correlation_id: "g0"), ns)
      kept = for i <- 20_000..n, rem(i, 7) == 0, do: i

      # Right away (the group cut may still be pending) and once it is done.
      assert ids(EventStore.get_by_correlation("g0", ns)) == [n + 1 | kept]
      Process.sleep(50)
      assert ids(EventStore.get_by_correlation("g0", ns)) == [n + 1 | kept]

      assert {:ok, %{current_event_count: 10_002, events_pruned: 19_999}} = EventStore.stats(ns)
    end

    test "reads by type right after a prune and once its type cut is swept" do
      # The type indexes are cut after the prune returns; reads by type must
      # not see the pruned events meanwhile, nor lose those stored since.
      ns = start_isolated(shards: 2, max_events: 100_000)
      type = fn i -> if rem(i, 2) == 0, do: :even, else: :odd end
      n = 4_000

      for chunk <- Enum.chunk_every(1..n, 500) do
        {:ok, _} =
          EventStore.store_batch(
            Enum.map(chunk, &event(&1, event_type: type.(&1), timestamp: &1)),
            ns
          )
      end

      assert {:ok, 1_999} = EventStore.prune_before(2_000, ns)
      # Older than the cut, stored after the prune; and pruned id 2 (it was
      # :even) stored again as :odd, after the cut.
      {:ok, _} = EventStore.store(event(n + 1, event_type: :odd, timestamp: 7), ns)
      {:ok, _} = EventStore.store(event(2, event_type: :odd, timestamp: n + 2), ns)
      ts = fn id -> %{2 => n + 2, (n + 1) => 7}[id] || id end
      odd = [n + 1 | for(i <- 2_001..n, rem(i, 2) == 1, do: i)] ++ [2]
      even = for i <- 2_000..n, rem(i, 2) == 0, do: i

      check = fn ->
        for {t, expected} <- [odd: odd, even: even] do
          by_id = Enum.sort(expected)
          assert ids(EventStore.query(%{event_type: t, order_by: :timestamp}, ns)) == expected
          assert ids(EventStore.query(%{event_type: t, order_by: :event_id}, ns)) == by_id

          assert ids(EventStore.query(%{event_type: t, order_by: :event_id, limit: 3}, ns)) ==
                   Enum.take(by_id, 3)

          window = %{event_type: t, time_range: {0, 2_100}, order_by: :timestamp}
          in_window = Enum.filter(expected, &(ts.(&1) <= 2_100))
          assert ids(EventStore.query(window, ns)) == in_window
        end
      end

      check.()
      Process.sleep(50)
      check.()
    end
  end

  describe "stats, status, availability, reset" do
    test "stats after 5 stores" do
      for i <- 1..5, do: {:ok, _} = EventStore.store(event(i))
      {:ok, stats} = EventStore.stats()
      assert %{current_event_count: 5, events_stored: 5, events_pruned: 0} = stats
      assert is_integer(stats.uptime_ms) and is_integer(stats.memory_usage_estimate)
      assert %{evicted_max_events: 0, evicted_max_age: 0, async_dropped: 0} = stats
    end

    test "status and available?" do
      {:ok, _} = EventStore.store(event(9))
      assert {:ok, %{status: :running, event_count: 1, next_id: 10}} = EventStore.status()
      assert EventStore.available?()
      refute EventStore.available?(namespace: {:test, make_ref()})
      assert :ok = EventStore.initialize()
    end

    test "a namespace without a store gives the 3000 error" do
      ns = [namespace: {:test, make_ref()}]

      assert {:error, %Error{code: 3000, error_type: :service_unavailable, severity: :high}} =
               EventStore.store(event(1), ns)

      assert {:error, %Error{code: 3000}} = EventStore.query(%{}, ns)
      assert {:error, %Error{code: 3000}} = EventStore.stats(ns)
    end

    test "reset_state is forbidden outside test mode" do
      Application.put_env(:elixir_scope_foundation, :test_mode, false)
      on_exit(fn -> Application.put_env(:elixir_scope_foundation, :test_mode, true) end)

      assert {:error, %Error{code: 3002, error_type: :operation_forbidden}} =
               EventStore.reset_state()
    end

    test "stop/1 releases the store; a new start is empty" do
      opts = start_isolated()
      {:ok, _} = EventStore.store(event(1), opts)
      :ok = EventStore.stop(opts)
      assert {:error, %Error{code: 3000}} = EventStore.get(1, opts)
      refute EventStore.available?(opts)
      assert :ok = EventStore.initialize(opts)
      assert {:error, %Error{code: 3001}} = EventStore.get(1, opts)
      EventStore.stop(opts)
    end
  end

  describe "server messages addressed to the pid" do
    test "a test-namespace pid answers on its own store" do
      opts = start_isolated()

      pid =
        GenServer.whereis(
          ElixirScope.Foundation.ProcessRegistry.via_tuple(opts[:namespace], :event_store)
        )

      assert {:ok, 1} = GenServer.call(pid, {:store_event, event(1, correlation_id: "m")})
      assert {:ok, [2, 3]} = GenServer.call(pid, {:store_batch, [event(2), event(3)]})
      assert {:ok, %Event{event_id: 1}} = GenServer.call(pid, {:get_event, 1})
      assert {:error, %Error{error_type: :not_found}} = GenServer.call(pid, {:get_event, 9})
      assert {:ok, [_, _, _]} = GenServer.call(pid, {:query_events, %{}})
      assert {:ok, [_]} = GenServer.call(pid, {:get_by_correlation, "m"})
      assert {:ok, %{current_event_count: 3}} = GenServer.call(pid, :get_stats)
      assert {:ok, %{status: :running}} = GenServer.call(pid, :get_status)
      assert {:error, %Error{error_type: :not_found}} = EventStore.get(1)
      assert {:ok, 3} = GenServer.call(pid, {:prune_before, System.monotonic_time() + 1})
      assert :ok = GenServer.call(pid, :reset_state)
    end
  end

  describe "crash survival" do
    test "killing the production store process loses no event" do
      events = for i <- 1..500, do: event(i, correlation_id: "k#{rem(i, 5)}")
      {:ok, _} = EventStore.store_batch(events)
      via = ElixirScope.Foundation.ProcessRegistry.via_tuple(:production, :event_store)
      old = GenServer.whereis(via)
      ref = Process.monitor(old)
      Process.exit(old, :kill)
      assert_receive {:DOWN, ^ref, :process, ^old, :killed}
      wait_until(fn -> (pid = GenServer.whereis(via)) && pid != old end)
      assert {:ok, %{current_event_count: 500}} = EventStore.stats()
      assert {:ok, ^events} = EventStore.query(%{})
      assert {:ok, %Event{event_id: 250}} = EventStore.get(250)
      assert ids(EventStore.get_by_correlation("k3")) == Enum.filter(1..500, &(rem(&1, 5) == 3))
    end
  end

  describe "retention" do
    test "max_events evicts the oldest stored events" do
      opts = start_isolated(max_events: 5)
      for i <- 1..12, do: {:ok, _} = EventStore.store(event(i, timestamp: -i), opts)
      assert ids(EventStore.query(%{}, opts)) == Enum.to_list(8..12)
      assert {:ok, %{evicted_max_events: 7, current_event_count: 5}} = EventStore.stats(opts)
    end

    test "max_age_seconds expires events by age since storing" do
      opts = start_isolated(max_age_seconds: 1, prune_interval: 50)
      {:ok, _} = EventStore.store(event(1), opts)
      wait_until(fn -> match?({:error, _}, EventStore.get(1, opts)) end)
      assert {:ok, %{evicted_max_age: 1, current_event_count: 0}} = EventStore.stats(opts)
    end
  end

  describe "store_async/2" do
    test "events become queryable shortly after" do
      opts = start_isolated()

      for i <- 1..50,
          do: :ok = EventStore.store_async(event(i, event_type: :config_updated), opts)

      wait_until(fn ->
        length(ids(EventStore.query(%{event_type: :config_updated}, opts))) == 50
      end)

      assert {:error, %Error{error_type: :validation_failed}} =
               EventStore.store_async(Event.empty(), opts)
    end

    test "a full queue is refused and counted" do
      opts = start_isolated(async_queue_size: 1)

      results = for i <- 1..3000, do: EventStore.store_async(event(i), opts)

      dropped =
        Enum.count(results, &match?({:error, %Error{error_type: :resource_exhausted}}, &1))

      assert dropped > 0
      assert Enum.all?(results, &(&1 == :ok or match?({:error, _}, &1)))

      wait_until(fn ->
        {:ok, s} = EventStore.stats(opts)
        s.async_queue_len == 0 and s.current_event_count + dropped == 3000
      end)

      assert {:ok, %{async_dropped: ^dropped}} = EventStore.stats(opts)
    end
  end

  describe "normal stop" do
    @tag skip: !File.exists?("/proc/self/status") && "needs /proc/self/status"
    test "joins the store's worker thread at once" do
      {before, workers} = {os_threads(), worker_threads()}
      opts = start_isolated()
      # The new thread names itself once it runs.
      assert eventually(fn -> worker_threads() -- workers != [] end, 1_000)
      [tid] = worker_threads() -- workers
      # Hold the handle, like a caller that read it just before the stop:
      # the store is not garbage collected, yet its thread must go.
      Process.put(:held, EventStore.Support.entry(opts))
      :ok = EventStore.stop(opts)
      # Joined before stop/1 returns; polled only for the kernel's bookkeeping.
      assert eventually(fn -> not File.exists?("/proc/self/task/#{tid}") end, 100)
      assert eventually(fn -> os_threads() <= before end, 100)
    end

    test "calls after a stop return the unavailable error" do
      opts = start_isolated()
      {:ok, 1} = EventStore.store(event(1), opts)
      :ok = EventStore.stop(opts)
      unavailable? = &match?({:error, %Error{code: 3000, error_type: :service_unavailable}}, &1)
      assert unavailable?.(EventStore.store(event(2), opts))
      assert unavailable?.(EventStore.store_async(event(3), opts))
      assert unavailable?.(EventStore.get(1, opts))
    end

    test "callers racing a stop get results or Types.Error, never a crash" do
      opts = start_isolated()

      callers =
        for i <- 1..4 do
          Task.async(fn ->
            Enum.map(1..2000, fn n ->
              e = event(i * 10_000 + n)

              if rem(n, 2) == 0,
                do: EventStore.store(e, opts),
                else: EventStore.store_async(e, opts)
            end)
          end)
        end

      :ok = EventStore.stop(opts)
      results = Enum.flat_map(callers, &Task.await/1)

      assert Enum.all?(
               results,
               &(&1 == :ok or match?({:ok, _}, &1) or match?({:error, %Error{}}, &1))
             )
    end

    test "a caller holding the closed store's handle gets clean results" do
      opts = start_isolated()
      {:ok, 1} = EventStore.store(event(1, correlation_id: "c"), opts)
      namespace = Keyword.fetch!(opts, :namespace)
      entry = EventStore.Support.lookup(namespace)
      :ok = EventStore.stop(opts)
      # Republish the closed handle, as a caller that read it just before.
      EventStore.Support.publish(namespace, entry)
      on_exit(fn -> EventStore.Support.unpublish(namespace) end)

      assert {:error, %Error{code: 3000, error_type: :service_unavailable}} =
               EventStore.store(event(2), opts)

      assert {:error, %Error{code: 3000}} = EventStore.store_async(event(3), opts)
      assert {:error, %Error{code: 3000}} = EventStore.store_batch([event(4)], opts)
      assert {:error, %Error{error_type: :not_found}} = EventStore.get(1, opts)
      assert {:ok, []} = EventStore.query(%{}, opts)
      assert {:ok, []} = EventStore.get_by_correlation("c", opts)
      assert {:ok, %{current_event_count: 0}} = EventStore.stats(opts)
    end
  end

  describe "concurrency" do
    test "8 writers and 4 readers at once: unique ids, exact counts, complete groups" do
      opts = start_isolated(max_events: 0)
      per = 400

      writers =
        for w <- 1..8 do
          Task.async(fn ->
            for i <- 1..per do
              e = event(w * 100_000 + i, correlation_id: "w#{w}", timestamp: i)
              {:ok, _} = EventStore.store(e, opts)
            end
          end)
        end

      readers =
        for _ <- 1..4 do
          Task.async(fn ->
            for _ <- 1..50 do
              {:ok, _} = EventStore.query(%{order_by: :timestamp, limit: 20}, opts)
              {:ok, _} = EventStore.get_by_correlation("w1", opts)
            end
          end)
        end

      Task.await_many(writers ++ readers, 30_000)
      {:ok, all} = EventStore.query(%{}, opts)
      all_ids = Enum.map(all, & &1.event_id)
      assert length(all_ids) == 8 * per
      assert all_ids == Enum.uniq(all_ids)
      assert {:ok, %{current_event_count: 3200, events_stored: 3200}} = EventStore.stats(opts)

      for w <- 1..8 do
        assert ids(EventStore.get_by_correlation("w#{w}", opts)) ==
                 Enum.map(1..per, &(w * 100_000 + &1))
      end
    end
  end

  describe "size-based scheduling (docs/architecture.md, Scheduler safety)" do
    alias ElixirScope.Foundation.Test.NativeCalls

    # ~200 KB of mixed terms: over the 64 KiB normal-scheduler budget.
    defp big_data(seed) do
      %{
        items: for(i <- 1..5_000, do: {i, :item, [i * seed, "s#{i}"]}),
        pid: self(),
        ref: make_ref(),
        bin: :binary.copy(<<seed>>, 50_000),
        float: seed / 3
      }
    end

    defp store_calls(fun), do: NativeCalls.traced(fun, "store_")

    test "small events use the normal NIFs only; big ones round-trip exactly via the dirty twins" do
      opts = start_isolated()
      small = event(1, data: %{a: 1}, correlation_id: "s")
      big = event(2, data: big_data(2), correlation_id: "b")

      assert {{:ok, 1}, [:store_put]} = store_calls(fn -> EventStore.store(small, opts) end)

      assert {{:ok, 2}, [:store_put, :store_put_dirty]} =
               store_calls(fn -> EventStore.store(big, opts) end)

      assert {{:ok, got}, [:store_get]} = store_calls(fn -> EventStore.get(1, opts) end)
      assert got === small

      assert {{:ok, got}, [:store_get, :store_get_dirty]} =
               store_calls(fn -> EventStore.get(2, opts) end)

      assert got === big
    end

    test "the byte budget: a 50 KB binary stays normal, a 70 KB one goes dirty" do
      opts = start_isolated()
      fits = event(1, data: :binary.copy("x", 50_000))
      over = event(2, data: :binary.copy("x", 70_000))
      assert {{:ok, 1}, [:store_put]} = store_calls(fn -> EventStore.store(fits, opts) end)

      assert {{:ok, 2}, [:store_put, :store_put_dirty]} =
               store_calls(fn -> EventStore.store(over, opts) end)

      assert {{:ok, ^fits}, [:store_get]} = store_calls(fn -> EventStore.get(1, opts) end)

      assert {{:ok, ^over}, [_, :store_get_dirty]} =
               store_calls(fn -> EventStore.get(2, opts) end)
    end

    test "store_async and store_batch route big events to the dirty twins" do
      opts = start_isolated()
      big = event(1, data: big_data(1))

      assert {:ok, [:store_put_async, :store_put_async_dirty]} =
               store_calls(fn -> EventStore.store_async(big, opts) end)

      wait_until(fn -> EventStore.get(1, opts) == {:ok, big} end)

      # 70 small events: one normal call that validates and stores. 300:
      # three chunks of at most 128, each validated, then each stored. A
      # chunk holding a big event goes dirty as a whole; order and ids are
      # kept.
      smalls = for i <- 10..79, do: event(i, data: %{i: i})
      assert {{:ok, ids}, calls} = store_calls(fn -> EventStore.store_batch(smalls, opts) end)
      assert {ids, calls} == {Enum.to_list(10..79), [:store_put_batch]}

      more = for i <- 1000..1299, do: event(i, data: %{i: i})
      assert {{:ok, ids}, calls} = store_calls(fn -> EventStore.store_batch(more, opts) end)
      assert ids == Enum.to_list(1000..1299)
      assert calls == List.duplicate(:store_check_batch, 3) ++ List.duplicate(:store_put_batch, 3)

      mixed = [event(100), event(101, data: big_data(3)), event(102)]

      assert {{:ok, [100, 101, 102]}, [:store_put_batch, :store_put_batch_dirty]} =
               store_calls(fn -> EventStore.store_batch(mixed, opts) end)

      for e <- mixed, do: assert(EventStore.get(e.event_id, opts) == {:ok, e})
    end

    test "query and get_by_correlation fall back to the dirty twins over the budget" do
      opts = start_isolated()
      bigs = for i <- 1..3, do: event(i, event_type: :big, correlation_id: "b", data: big_data(i))
      smalls = for i <- 4..6, do: event(i, event_type: :small, correlation_id: "s", timestamp: i)
      {:ok, _} = EventStore.store_batch(bigs ++ smalls, opts)

      assert {{:ok, ^smalls}, [:store_query]} =
               store_calls(fn -> EventStore.query(%{event_type: :small, limit: 8}, opts) end)

      assert {{:ok, ^bigs}, [:store_query, :store_query_dirty]} =
               store_calls(fn -> EventStore.query(%{event_type: :big, limit: 8}, opts) end)

      assert {{:ok, ^smalls}, [:store_get_by_correlation]} =
               store_calls(fn -> EventStore.get_by_correlation("s", opts) end)

      # Over the count bound: read in slices; a slice whose events are over
      # the byte budget goes dirty for the rest of the answer.
      assert {{:ok, got}, calls} = store_calls(fn -> EventStore.get_by_correlation("b", opts) end)

      assert calls ==
               [:store_get_by_correlation, :store_correlation_slice] ++
                 [:store_correlation_slice_dirty]

      assert got === bigs
    end

    test "stream/2 yields what query/2 returns, page by page, lazily" do
      opts = start_isolated(max_events: 0)
      types = [:type_a, :type_b, :test]

      events =
        for i <- 1..700 do
          event(i, event_type: Enum.at(types, rem(i, 3)), timestamp: rem(i * 7919, 997))
        end

      {:ok, _} = EventStore.store_batch(events, opts)

      queries = [
        %{},
        %{order_by: :event_id, offset: 250, limit: 300},
        %{event_type: :type_b, order_by: :timestamp_desc},
        %{time_range: {100, 800}, order_by: :timestamp, offset: 17, limit: 129},
        %{event_type: :type_a, time_range: {0, 500}, order_by: :event_id},
        %{limit: 1},
        %{event_type: :nope}
      ]

      for q <- queries, page <- [1, 7, 128, 1000] do
        {:ok, want} = EventStore.query(q, opts)
        got = q |> EventStore.stream(opts ++ [page_size: page]) |> Enum.to_list()
        assert got == want, "#{inspect(q)} page #{page}"
      end

      # Lazy: taking 3 events of 700 reads one page.
      assert {[_, _, _], [:store_query_slice]} =
               store_calls(fn ->
                 %{} |> EventStore.stream(opts ++ [page_size: 10]) |> Enum.take(3)
               end)

      # Pages of 50: 700 events in 14 full pages and one empty one.
      assert {700, calls} =
               store_calls(fn ->
                 %{} |> EventStore.stream(opts ++ [page_size: 50]) |> Enum.count()
               end)

      assert calls == List.duplicate(:store_query_slice, 15)

      assert_raise ArgumentError, ~r/time_range/, fn ->
        EventStore.stream(%{time_range: :x}, opts)
      end

      assert_raise ArgumentError, ~r/page_size/, fn ->
        EventStore.stream(%{}, opts ++ [page_size: 0])
      end
    end

    test "long answers are read in slices on normal schedulers, equal to one read" do
      opts = start_isolated(max_events: 0)
      # Timestamps run against ids, and repeat.
      events = for i <- 1..1500, do: event(i, correlation_id: "g", timestamp: rem(i * 7919, 997))
      {:ok, _} = EventStore.store_batch(events, opts)
      by_time = Enum.sort_by(events, &{&1.timestamp, &1.event_id})

      assert {{:ok, got}, calls} = store_calls(fn -> EventStore.query(%{}, opts) end)
      assert got == by_time
      # After the first slice the store is asked how long the answer is.
      assert calls == [
               :store_query_slice,
               :store_match_count | List.duplicate(:store_query_slice, 11)
             ]

      q = %{order_by: :event_id, offset: 700, limit: 500}
      assert {{:ok, got}, calls} = store_calls(fn -> EventStore.query(q, opts) end)
      assert got == Enum.slice(events, 700, 500)
      assert Enum.uniq(calls) == [:store_query_slice, :store_match_count]

      q = %{order_by: :timestamp_desc, time_range: {100, 900}, offset: 300}

      want =
        by_time |> Enum.reverse() |> Enum.filter(&(&1.timestamp in 100..900)) |> Enum.drop(300)

      assert {:ok, ^want} = EventStore.query(q, opts)

      assert {{:ok, ^by_time}, calls} =
               store_calls(fn -> EventStore.get_by_correlation("g", opts) end)

      assert calls ==
               [:store_get_by_correlation, :store_correlation_slice, :store_correlation_len] ++
                 List.duplicate(:store_correlation_slice, 11)
    end
  end
end
