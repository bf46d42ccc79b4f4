defmodule ElixirScope.Foundation.Services.EventStore.WarmTest do
  # Warm storage inside one VM: tiers, restart of the store on the same
  # directory, the disk bound, compression, damage, a second owner.
  # (Restarts of the whole VM are in test/integration/warm_restart_test.exs.)
  use ExUnit.Case, async: true

  @moduletag :warm

  import ExUnit.CaptureLog

  alias ElixirScope.Foundation.Native
  alias ElixirScope.Foundation.Services.EventStore
  alias ElixirScope.Foundation.Services.EventStore.Support
  alias ElixirScope.Foundation.Types.{Error, Event}

  setup do
    dir = Path.join(System.tmp_dir!(), "warm-unit-#{System.unique_integer([:positive])}")
    on_exit(fn -> File.rm_rf!(dir) end)
    %{dir: dir}
  end

  defp start(dir, opts \\ []) do
    ns = {:test, make_ref()}
    warm = Keyword.merge([path: dir, max_size_mb: 50, compression: :zstd], opts[:warm] || [])
    start_opts = [namespace: ns, warm: warm] ++ Keyword.delete(opts, :warm)

    {:ok, pid} =
      Supervisor.start_child(
        ElixirScope.Foundation.Supervisor,
        Supervisor.child_spec({EventStore, start_opts}, id: ns, restart: :temporary)
      )

    on_exit(fn -> if Process.alive?(pid), do: EventStore.stop(namespace: ns) end)
    [namespace: ns]
  end

  defp event(id, ts, fields \\ []) do
    Event.new([event_id: id, event_type: :warm_test, timestamp: ts, data: %{n: id}] ++ fields)
  end

  defp ids({:ok, events}), do: Enum.map(events, & &1.event_id)

  # Waits until the tier's indexes are rebuilt after open: until then a
  # read cannot tell what memory lacks and reads the disk.
  defp rebuilt(warm, tries \\ 500) do
    cond do
      Native.warm_floor(warm) != :unknown -> :ok
      tries > 0 -> Process.sleep(10) && rebuilt(warm, tries - 1)
    end
  end

  # Every read the contract offers, for equivalence checks.
  defp reads(ns) do
    queries = [
      %{},
      %{order_by: :timestamp},
      %{order_by: :timestamp_desc, limit: 7},
      %{order_by: :event_id, offset: 3, limit: 5},
      %{event_type: :other},
      %{event_type: :warm_test, time_range: {20, 60}, order_by: :timestamp},
      %{time_range: {10, 30}}
    ]

    %{
      queries: Enum.map(queries, &EventStore.query(&1, ns)),
      gets: Enum.map(1..40, &plain(EventStore.get(&1, ns))),
      cid: EventStore.get_by_correlation("c", ns)
    }
  end

  # Errors carry their creation time: compare their codes.
  defp plain({:error, %Error{code: code}}), do: {:error, code}
  defp plain(other), do: other

  defp store_sample(ns) do
    for id <- 1..30 do
      fields = if rem(id, 3) == 0, do: [correlation_id: "c"], else: []
      fields = if rem(id, 5) == 0, do: [event_type: :other] ++ fields, else: fields
      {:ok, ^id} = EventStore.store(event(id, rem(id * 37, 100), fields), ns)
    end

    {:ok, _} = EventStore.store_batch(for(id <- 31..35, do: event(id, id)), ns)
    # Overwrite: the latest version wins.
    {:ok, 7} = EventStore.store(event(7, 99, data: %{n: :new}), ns)
  end

  test "a restarted store on the same directory answers every read the same", %{dir: dir} do
    ns = start(dir)
    store_sample(ns)
    {:ok, 2} = EventStore.prune_before(10, ns)
    before = reads(ns)
    {:ok, stats} = EventStore.stats(ns)
    assert %{warm_enabled: true, warm_events: 33, events_stored: 36, events_pruned: 2} = stats
    assert stats.warm_bytes > 0
    assert {:ok, %Event{data: %{n: :new}, timestamp: 99}} = EventStore.get(7, ns)

    :ok = EventStore.stop(ns)
    ns2 = start(dir)
    assert reads(ns2) == before

    assert {:ok, %{warm_events: 33, events_stored: 36, events_pruned: 2, current_event_count: 33}} =
             EventStore.stats(ns2)

    # Pruned stays pruned; new writes keep working.
    assert {:error, %Error{code: 3001}} = EventStore.get(11, ns2)
    {:ok, 50} = EventStore.store(event(50, 1), ns2)
    assert {:ok, %Event{event_id: 50}} = EventStore.get(50, ns2)
  end

  test "events evicted from the hot tier stay readable, reads merge both tiers", %{dir: dir} do
    ns = start(dir, max_events: 5)
    store_sample(ns)
    {:ok, stats} = EventStore.stats(ns)
    assert stats.evicted_max_events > 0
    assert stats.warm_events == 35
    assert {:ok, %Event{event_id: 1}} = EventStore.get(1, ns)
    assert length(ids(EventStore.query(%{}, ns))) == 35
    assert ids(EventStore.query(%{order_by: :event_id, offset: 30, limit: 3}, ns)) == [31, 32, 33]

    # A store without a hot bound over a fresh directory gives the same answers.
    other = start(dir <> "-all")
    on_exit(fn -> File.rm_rf!(dir <> "-all") end)
    store_sample(other)
    assert reads(ns) == reads(other)
  end

  test "the disk bound drops the oldest events and counts them", %{dir: dir} do
    ns = start(dir, warm: [max_size_mb: 1, compression: :none], max_events: 100)
    blob = :crypto.strong_rand_bytes(2_000)

    for chunk <- Enum.chunk_every(1..3_000, 100) do
      {:ok, _} = EventStore.store_batch(for(id <- chunk, do: event(id, id, data: blob)), ns)
    end

    {:ok, stats} = EventStore.stats(ns)
    assert stats.warm_evicted > 0
    assert stats.warm_events + stats.warm_evicted == 3_000
    assert stats.warm_events * 2_000 <= 1024 * 1024
    assert {:error, %Error{code: 3001}} = EventStore.get(1, ns)
    assert {:ok, %Event{event_id: 3_000}} = EventStore.get(3_000, ns)
    [first | _] = ids(EventStore.query(%{order_by: :event_id}, ns))
    assert first == 3_000 - stats.warm_events + 1
  end

  test "every compression mode round-trips events; compressed modes take less room", %{dir: dir} do
    sizes =
      for mode <- [:none, :gzip, :zstd] do
        path = "#{dir}-#{mode}"
        on_exit(fn -> File.rm_rf!(path) end)
        ns = start(path, warm: [compression: mode])
        events = for id <- 1..200, do: event(id, id, data: %{text: String.duplicate("abc", 20)})
        {:ok, _} = EventStore.store_batch(events, ns)
        :ok = EventStore.stop(ns)
        ns = start(path, warm: [compression: mode])
        assert {:ok, ^events} = EventStore.query(%{}, ns)
        {:ok, %{warm_bytes: bytes}} = EventStore.stats(ns)
        {mode, bytes}
      end

    assert sizes[:gzip] < sizes[:none]
    assert sizes[:zstd] < sizes[:none]
  end

  # Terms of every kind the disk form is written for, and some it leaves
  # to the VM's encoder. (Test builds also compare each event's disk form
  # with `term_to_binary/1` as it is written.)
  defp shapes do
    big_map = Map.new(1..40, &{&1, &1 * 2})
    long_atom = String.to_atom(String.duplicate("é", 200))

    [
      %{},
      %{ints: [0, 1, 255, 256, -1, 2_147_483_647, 2_147_483_648, -2_147_483_648]},
      %{ints: [-2_147_483_649, 576_460_752_303_423_487, -576_460_752_303_423_488]},
      %{big: [2 ** 64, -(2 ** 70)], floats: [0.0, -0.0, 1.5, -2.5e-300, 1.0e300]},
      %{bins: ["", "x", :binary.copy("y", 70_000), <<1, 2, 3>>]},
      %{bits: <<1::3>>, ref: make_ref(), fun: &Enum.count/1, port: hd(Port.list())},
      %{lists: [[], ~c"abc", [1, 2, 300], [:a | :b], [1 | 2], Enum.to_list(1..70_000)]},
      %{chars: Enum.map(1..65_536, &rem(&1, 256)), exact: Enum.map(1..65_535, &rem(&1, 256))},
      %{tuples: [{}, {1}, {:a, "b", 3.0}, List.to_tuple(Enum.to_list(1..300))]},
      %{atoms: [true, false, nil, :ok, long_atom, :"émoji 🎉"], pid: self()},
      %{maps: [big_map, %{"k" => %{nested: %{deeper: [%{}]}}}, %{{1, 2} => [3], 1.0 => 1}]},
      {:not_a_map, [1, 2], "data"},
      Enum.reduce(1..70, :leaf, fn i, acc -> %{level: i, inner: acc} end)
    ]
  end

  # Stores `events` (the first `singly` one by one, the rest in a batch),
  # restarts the store on `dir`, and checks reads give them back unchanged.
  defp restarted_reads_give_back(ns, dir, events, singly) do
    for e <- Enum.take(events, singly), do: {:ok, _} = EventStore.store(e, ns)
    {:ok, _} = EventStore.store_batch(Enum.drop(events, singly), ns)
    :ok = EventStore.stop(ns)
    ns = start(dir)
    assert {:ok, ^events} = EventStore.query(%{order_by: :event_id}, ns)
    for e <- events, do: assert({:ok, ^e} = EventStore.get(e.event_id, ns))
  end

  test "events of every kind of data read back the same after a restart", %{dir: dir} do
    ns = start(dir)

    events =
      for {data, i} <- Enum.with_index(shapes(), 1),
          do: event(i, i, data: data, correlation_id: "c#{i}")

    restarted_reads_give_back(ns, dir, events, 6)
  end

  test "an event keeps every field on disk, whatever its wall time", %{dir: dir} do
    ns = start(dir)
    utc = DateTime.utc_now()

    zoned = %DateTime{
      year: 2026,
      month: 3,
      day: 29,
      hour: 3,
      minute: 0,
      second: 1,
      microsecond: {5, 6},
      time_zone: "Europe/Paris",
      zone_abbr: "CEST",
      utc_offset: 3600,
      std_offset: 3600
    }

    walls = [
      nil,
      utc,
      zoned,
      %{utc | calendar: __MODULE__},
      Map.put(utc, :extra, 1),
      %{utc | microsecond: {0, 0}, time_zone: "Etc/UTC"}
    ]

    events =
      for {wall, i} <- Enum.with_index(walls, 1) do
        event(i, -i, wall_time: wall, node: :"other@127.0.0.1", pid: self(), parent_id: i + 100)
      end

    restarted_reads_give_back(ns, dir, events, 3)
  end

  test "an event's keys and module names are not repeated on disk", %{dir: dir} do
    # The disk bound counts record bytes: 1 MB holds twice as many events
    # kept as their values as it would hold written whole.
    ns = start(dir, warm: [compression: :none, max_size_mb: 1])

    events =
      for id <- 1..6_000 do
        event(id, id, wall_time: DateTime.utc_now(), correlation_id: "c#{rem(id, 10)}")
      end

    whole = events |> Enum.map(&byte_size(:erlang.term_to_binary(&1))) |> Enum.sum()
    for batch <- Enum.chunk_every(events, 500), do: {:ok, _} = EventStore.store_batch(batch, ns)
    {:ok, %{warm_events: kept, warm_evicted: evicted}} = EventStore.stats(ns)
    assert kept + evicted == 6_000
    assert kept * whole / 6_000 > 1_500_000, "#{kept} events kept in 1 MB"
    :ok = EventStore.stop(ns)
    ns = start(dir, warm: [compression: :none, max_size_mb: 1])
    newest = Enum.take(events, -kept)
    assert {:ok, ^newest} = EventStore.query(%{order_by: :event_id}, ns)
  end

  test "a second owner of the directory runs hot-only and leaves the data alone", %{dir: dir} do
    ns = start(dir)
    {:ok, 1} = EventStore.store(event(1, 1), ns)

    log =
      capture_log(fn ->
        second = start(dir)
        send(self(), {:second, second})
      end)

    assert_received {:second, second}
    assert log =~ "in use by another process"
    assert {:ok, %{warm_enabled: false}} = EventStore.stats(second)
    assert {:error, %Error{code: 3001}} = EventStore.get(1, second)
    {:ok, 2} = EventStore.store(event(2, 2), second)
    assert ids(EventStore.query(%{}, ns)) == [1]
  end

  test "an unwritable path runs hot-only with a logged error" do
    log =
      capture_log(fn ->
        ns = start("/proc/no-such-dir/warm")
        send(self(), {:ns, ns})
      end)

    assert_received {:ns, ns}
    assert log =~ "hot-only"
    assert {:ok, %{warm_enabled: false, warm_events: 0}} = EventStore.stats(ns)
    assert {:ok, 1} = EventStore.store(event(1, 1), ns)
  end

  test "a damaged record is skipped and counted; the rest stays readable", %{dir: dir} do
    ns = start(dir, warm: [compression: :none])
    marker = "MARKER-" <> String.duplicate("x", 64)
    {:ok, 1} = EventStore.store(event(1, 1, data: %{m: marker}), ns)
    {:ok, 2} = EventStore.store(event(2, 2), ns)
    :ok = EventStore.stop(ns)

    # Flip one byte of the marker wherever it lies on disk (journal or table).
    damaged =
      for file <- Path.wildcard(Path.join(dir, "data/**/*")), File.regular?(file) do
        bin = File.read!(file)

        case :binary.match(bin, "MARKER-") do
          {pos, _} ->
            <<head::binary-size(pos + 10), b, rest::binary>> = bin
            File.write!(file, <<head::binary, Bitwise.bxor(b, 1), rest::binary>>)
            true

          :nomatch ->
            false
        end
      end

    assert Enum.any?(damaged)
    log = capture_log(fn -> send(self(), {:ns, start(dir, warm: [compression: :none])}) end)
    assert_received {:ns, ns}
    {:ok, stats} = EventStore.stats(ns)
    {:ok, 3} = EventStore.store(event(3, 3), ns)
    assert {:ok, %Event{event_id: 3}} = EventStore.get(3, ns)

    # Either the engine refused the directory (moved aside, started fresh),
    # or its journal recovery stopped at the damaged batch, or our record
    # checksum caught it: never is damaged content returned.
    if log =~ "moved it to" do
      assert [_] = Path.wildcard(Path.join(dir, "data.damaged-*"))
    else
      case EventStore.get(1, ns) do
        {:ok, %Event{data: %{m: m}}} -> assert m == marker
        {:error, %Error{code: 3001}} -> :ok
      end
    end

    assert stats.warm_enabled
  end

  test "a failed disk write is an error and the event stays out of both tiers", %{dir: dir} do
    ns = start(dir)
    {:ok, 1} = EventStore.store(event(1, 1), ns)
    %{warm: warm} = Support.entry(ns)
    :ok = Native.warm_fail_writes(warm, 3)

    assert {:error, %Error{message: message}} = EventStore.store(event(2, 2), ns)
    assert message =~ "warm storage write failed"
    assert {:error, %Error{}} = EventStore.store_batch([event(3, 3), event(4, 4)], ns)
    # A big batch is answered by the writer's second thread: same rules.
    assert {:error, %Error{}} = EventStore.store_batch(for(id <- 100..199, do: event(id, id)), ns)

    # Writes resume; only acknowledged events are anywhere.
    {:ok, 5} = EventStore.store(event(5, 5), ns)
    {:ok, [6, 7]} = EventStore.store_batch([event(6, 6), event(7, 7)], ns)
    big = Enum.to_list(200..299)
    {:ok, ^big} = EventStore.store_batch(Enum.map(big, &event(&1, &1)), ns)

    for id <- [2, 3, 4, 100, 199] do
      assert {:error, %Error{code: 3001}} = EventStore.get(id, ns)
    end

    stored = [1, 5, 6, 7 | big]
    assert ^stored = ids(EventStore.query(%{}, ns))
    :ok = EventStore.stop(ns)
    ns = start(dir)
    assert ^stored = ids(EventStore.query(%{}, ns))
  end

  test "writes past the journal's bound wait for the disk tier; invalid ones fail at once",
       %{dir: dir} do
    ns = start(dir)
    %{warm: warm} = Support.entry(ns)
    :ok = Native.warm_hold_apply(warm, true)
    on_exit(fn -> Native.warm_hold_apply(warm, false) end)
    blob = :binary.copy("x", 4000)

    # Small batches until one waits: past 32 MiB of unapplied journal
    # (about 800 of them here) while nothing is applied.
    store = fn b ->
      Task.async(fn ->
        EventStore.store_batch(for(i <- 1..10, do: event(b * 10 + i, b, data: %{blob: blob})), ns)
      end)
    end

    {waiting, batches} =
      Enum.reduce_while(0..2_000, nil, fn b, nil ->
        task = store.(b)

        # A slow machine may take 300 ms for a batch; a waiting one takes
        # until the apply is released.
        case Task.yield(task, 300) || Task.yield(task, 2_000) do
          {:ok, {:ok, [_ | _]}} -> {:cont, nil}
          nil -> {:halt, {task, b}}
        end
      end)

    assert batches in 700..900
    bad = %{event(20_002, 1) | event_type: "not an atom"}
    assert {:error, %Error{error_type: :type_mismatch}} = EventStore.store(bad, ns)

    :ok = Native.warm_hold_apply(warm, false)
    assert {:ok, [_ | _]} = Task.await(waiting, 15_000)
    events = (batches + 1) * 10
    assert {:ok, %{warm_events: ^events}} = EventStore.stats(ns)
  end

  test "a query for the newest events skips the disk only when it can hold nothing newer",
       %{dir: dir} do
    ids = fn {:ok, events} -> Enum.map(events, & &1.event_id) end
    newest = fn ns, n -> EventStore.query(%{order_by: :timestamp_desc, limit: n}, ns) end

    # An event retention removed from memory is newer than what memory holds.
    ns = start(Path.join(dir, "a"), max_events: 5)
    {:ok, 100} = EventStore.store(event(100, 1_000), ns)
    {:ok, _} = EventStore.store_batch(for(i <- 1..10, do: event(i, i)), ns)
    assert ids.(newest.(ns, 3)) == [100, 10, 9]

    # Nothing on disk is newer than memory's answer: it needs no disk read,
    # so it answers while the tier applies nothing; a deeper one waits.
    # (Writes made before the tier's indexes are rebuilt count as on disk
    # only, so the rebuild is waited for first.)
    ns = start(Path.join(dir, "b"), max_events: 5)
    %{warm: warm} = Support.entry(ns)
    rebuilt(warm)
    {:ok, _} = EventStore.store_batch(for(i <- 1..10, do: event(i, i)), ns)
    :ok = Native.warm_hold_apply(warm, true)
    on_exit(fn -> Native.warm_hold_apply(warm, false) end)
    {:ok, _} = EventStore.store_batch([event(11, 11), event(12, 12)], ns)
    shallow = Task.async(fn -> newest.(ns, 3) end)
    assert {:ok, {:ok, _} = answer} = Task.yield(shallow, 2_000)
    assert ids.(answer) == [12, 11, 10]
    deep = Task.async(fn -> newest.(ns, 10) end)
    assert Task.yield(deep, 300) == nil
    :ok = Native.warm_hold_apply(warm, false)
    assert ids.(Task.await(deep, 15_000)) == Enum.to_list(12..3//-1)

    # Events of an earlier run on the directory count as on disk only.
    ns = start(Path.join(dir, "c"))
    {:ok, 100} = EventStore.store(event(100, 1_000), ns)
    :ok = EventStore.stop(ns)
    ns = start(Path.join(dir, "c"))
    {:ok, _} = EventStore.store_batch(for(i <- 1..3, do: event(i, i)), ns)
    assert ids.(newest.(ns, 2)) == [100, 3]
    assert ids.(EventStore.query(%{order_by: :event_id, limit: 2}, ns)) == [1, 2]
    assert ids.(EventStore.get_by_correlation("c", ns)) == []

    # A first run that memory has kept whole: no read needs the disk.
    ns = start(Path.join(dir, "d"))
    %{warm: warm} = Support.entry(ns)
    rebuilt(warm)
    {:ok, _} = EventStore.store_batch(for(i <- 1..3, do: event(i, i, correlation_id: "k")), ns)
    :ok = Native.warm_hold_apply(warm, true)
    on_exit(fn -> Native.warm_hold_apply(warm, false) end)
    {:ok, 4} = EventStore.store(event(4, 4, correlation_id: "k"), ns)

    reads =
      Task.async(fn ->
        {EventStore.get_by_correlation("k", ns), EventStore.query(%{order_by: :event_id}, ns)}
      end)

    assert {:ok, {group, all}} = Task.yield(reads, 2_000)
    assert ids.(group) == [1, 2, 3, 4]
    assert ids.(all) == [1, 2, 3, 4]
    :ok = Native.warm_hold_apply(warm, false)
  end

  test "concurrent writers are all acknowledged and all on disk", %{dir: dir} do
    ns = start(dir)

    1..8
    |> Enum.map(fn w ->
      Task.async(fn ->
        for i <- 1..50 do
          id = w * 1000 + i

          if rem(i, 5) == 0,
            do: {:ok, [^id]} = EventStore.store_batch([event(id, id)], ns),
            else: {:ok, ^id} = EventStore.store(event(id, id), ns)
        end
      end)
    end)
    |> Enum.each(&Task.await/1)

    :ok = EventStore.stop(ns)
    ns = start(dir)
    assert {:ok, %{warm_events: 400}} = EventStore.stats(ns)
    assert length(ids(EventStore.query(%{}, ns))) == 400
  end

  test "concurrent writes of the same ids keep one version in memory and on disk", %{dir: dir} do
    ns = start(dir)

    1..8
    |> Enum.map(fn w ->
      Task.async(fn ->
        for round <- 1..400, id <- 1..2 do
          e = event(id, id, data: %{writer: w, round: round})

          if rem(round, 4) == 0,
            do: {:ok, [^id]} = EventStore.store_batch([e], ns),
            else: {:ok, ^id} = EventStore.store(e, ns)
        end
      end)
    end)
    |> Enum.each(&Task.await(&1, 30_000))

    in_memory = for id <- 1..2, do: EventStore.get(id, ns)
    :ok = EventStore.stop(ns)
    ns = start(dir)
    assert for(id <- 1..2, do: EventStore.get(id, ns)) == in_memory
    assert {:ok, %{warm_events: 2}} = EventStore.stats(ns)
  end

  test "reset_state empties the warm tier too", %{dir: dir} do
    ns = start(dir)
    {:ok, 1} = EventStore.store(event(1, 1), ns)
    :ok = EventStore.reset_state(ns)
    assert {:ok, []} = EventStore.query(%{}, ns)
    assert {:ok, %{warm_events: 0}} = EventStore.stats(ns)
    :ok = EventStore.stop(ns)
    ns = start(dir)
    assert {:ok, []} = EventStore.query(%{}, ns)
  end

  test "a store without warm options reports the tier disabled" do
    ns = {:test, make_ref()}
    start_supervised!({EventStore, namespace: ns})

    assert {:ok, %{warm_enabled: false, warm_events: 0, warm_bytes: 0, warm_evicted: 0}} =
             EventStore.stats(namespace: ns)
  end

  describe "stream/2 with a warm tier" do
    test "yields what query/2 returns, events only on disk included", %{dir: dir} do
      opts = start(dir, max_events: 50)
      types = [:warm_a, :warm_b]

      events =
        for id <- 1..600,
            do: event(id, rem(id * 7, 300), event_type: Enum.at(types, rem(id, 2)))

      {:ok, _} = EventStore.store_batch(events, opts)
      # Memory holds 50 of them; the disk tier all.
      assert {:ok, %{evicted_max_events: 550}} = EventStore.stats(opts)

      ordered = [
        %{},
        %{order_by: :event_id, offset: 17, limit: 100},
        %{order_by: :timestamp},
        %{order_by: :timestamp_desc, offset: 5, limit: 333},
        %{event_type: :warm_a, order_by: :timestamp},
        %{event_type: :warm_b, order_by: :timestamp_desc, time_range: {20, 200}},
        %{event_type: :warm_a, order_by: :event_id}
      ]

      for q <- ordered, page <- [1, 7, 1000] do
        {:ok, want} = EventStore.query(q, opts)
        got = q |> EventStore.stream(opts ++ [page_size: page]) |> Enum.to_list()
        assert Enum.map(got, & &1.event_id) == Enum.map(want, & &1.event_id), inspect({q, page})
      end

      # No order asked: the same events (a filtered stream comes in time order).
      q = %{event_type: :warm_b, time_range: {0, 100}}
      {:ok, want} = EventStore.query(q, opts)
      got = q |> EventStore.stream(opts ++ [page_size: 9]) |> Enum.map(& &1.event_id)
      assert Enum.sort(got) == Enum.sort(Enum.map(want, & &1.event_id))
    end

    test "holds one page at a time", %{dir: dir} do
      opts = start(dir, max_events: 1000)
      total = 100_000

      1..total
      |> Stream.chunk_every(5_000)
      |> Enum.each(fn ids ->
        {:ok, _} = EventStore.store_batch(Enum.map(ids, &event(&1, &1)), opts)
      end)

      consumer =
        Task.async(fn ->
          :erlang.garbage_collect()

          %{order_by: :timestamp}
          |> EventStore.stream(opts ++ [page_size: 500])
          |> Enum.reduce({0, 0}, fn e, {n, peak} ->
            peak =
              if rem(n, 5_000) == 0,
                do: max(peak, elem(Process.info(self(), :memory), 1)),
                else: peak

            true = e.event_id == n + 1
            {n + 1, peak}
          end)
        end)

      {count, peak} = Task.await(consumer, 120_000)
      assert count == total
      # A hundred thousand events as one list take tens of megabytes.
      assert peak < 4 * 1024 * 1024, "consumer peaked at #{peak} bytes"
    end
  end
end
