defmodule ElixirScope.Foundation.Native.StoreTest do
  use ExUnit.Case, async: true

  import Bitwise
  alias ElixirScope.Foundation.Native
  alias ElixirScope.Foundation.Types.Event

  defp new_store(capacity \\ 16), do: elem(Native.store_new(4, 0, 0, capacity), 1)

  defp event(id, fields \\ []), do: Event.new([event_id: id, event_type: :test] ++ fields)

  test "happy path: put, get, query, correlation, prune, stats" do
    s = new_store()
    e = event(1, correlation_id: "c", timestamp: 5, data: {self(), make_ref(), fn -> 1 end})
    # A fun's environment has no cheap size bound: the normal NIF declines.
    assert :dirty = Native.store_put(s, e)
    assert {:ok, 1} = Native.store_put_dirty(s, e)
    assert Native.store_get(s, 1) == e
    assert Native.store_get(s, 2) == nil

    assert {:ok, [2, 3]} =
             Native.store_put_batch(s, [event(2, timestamp: 1), event(3, timestamp: 10)])

    assert {:ok, [^e]} = Native.store_get_by_correlation(s, "c", 10)
    assert :dirty = Native.store_get_by_correlation(s, "c", 0)
    assert {:ok, [^e]} = Native.store_get_by_correlation_dirty(s, "c")
    assert {:ok, [%Event{event_id: 2}]} = Native.store_query(s, :test, {0, 1}, :timestamp, 0, 0)
    assert {:ok, [%Event{event_id: 1}]} = Native.store_query(s, nil, nil, :event_id, 0, 1)
    assert {:ok, [_, _, _]} = Native.store_query_dirty(s, nil, nil, :timestamp_desc, 0, 0)
    shards = Native.store_shard_count(s)
    pruned = for i <- 0..(shards - 1), do: Native.store_prune_shard(s, 2, i)
    assert Enum.sum(for {:ok, n} <- pruned, do: n) == 1
    assert {:ok, 0} = Native.store_prune_shard_dirty(s, 2, 0)
    assert {:ok, 0} = Native.store_prune_shard(s, 2, shards)
    assert {:ok, 0} = Native.store_expire(s)
    stats = Map.new(elem(Native.store_stats(s), 1))
    assert %{current_event_count: 2, events_stored: 3, events_pruned: 1, max_id: 3} = stats
    assert {:ok, :ok} = Native.store_clear(s)
    assert :ok = Native.store_set_limits(s, 10, 1000)
    assert is_integer(Native.native_heap_bytes())
  end

  test "maps that are not plain events round-trip whole" do
    s = new_store()
    odd = Map.put(event(7), :extra, %{deep: [1, 2.5, "x"]})
    assert {:ok, 7} = Native.store_put(s, odd)
    assert Native.store_get(s, 7) == odd
  end

  test "wall_time values of every shape round-trip exactly" do
    s = new_store()
    {:ok, local} = DateTime.new(~D[2020-01-02], ~T[03:04:05.123], "Etc/UTC")
    shifted = %{local | time_zone: "Europe/X", zone_abbr: "X", utc_offset: 3600, std_offset: 0}
    other_calendar = %{DateTime.utc_now() | calendar: :not_iso}
    extra_key = Map.put(DateTime.utc_now(), :extra, 1)

    walls = [
      DateTime.utc_now(),
      local,
      shifted,
      other_calendar,
      extra_key,
      ~N[2020-01-01 00:00:00],
      {1, 2},
      nil
    ]

    for {wall, id} <- Enum.with_index(walls, 1) do
      e = event(id, wall_time: wall, node: node(), pid: self())
      assert {:ok, ^id} = put(s, e)
      assert Native.store_get(s, id) === e
    end
  end

  # Terms of every kind the store's own format handles natively or embeds
  # as external term format (see native/foundation_nif/src/store_term.rs).
  defp odd_terms do
    {:ok, port} = :gen_udp.open(0)
    :gen_udp.close(port)
    remote_pid = :erlang.list_to_pid(~c"<0.1.2>") |> :erlang.term_to_binary()
    remote_pid = :binary.replace(remote_pid, "nonode@nohost", "remote@hostxy")
    big_map = Map.new(1..40, &{&1, &1 * 2})
    deep = Enum.reduce(1..100, :bottom, &%{level: &1, next: [&2]})

    [
      nil,
      true,
      :unicode_é_atom,
      0,
      -1,
      1 <<< 62,
      -(1 <<< 63),
      (1 <<< 63) - 1,
      1 <<< 63,
      1 <<< 64,
      -(1 <<< 200),
      0.0,
      -0.0,
      1.5e300,
      -2.25,
      "",
      "héllo",
      :binary.copy("x", 100_000),
      binary_part("abcdef", 1, 3),
      <<1::3>>,
      <<255, 7::5>>,
      {},
      {1, {2, {3}}},
      [],
      [1, [2, [3]]],
      [1 | 2],
      [1, 2 | :tail],
      ~c"charlist",
      %{},
      %{"k" => 1, {1, 2} => [3], 4.0 => :x, 4 => :y},
      big_map,
      Map.new(1..16, &{&1, &1}),
      Map.new(1..17, &{&1, &1}),
      # Past the native-form term budget: whole-event ETF (and just below).
      Enum.to_list(1..10_000),
      Map.new(1..3_000, &{&1, [&1]}),
      Enum.to_list(1..4_000),
      deep,
      self(),
      :erlang.binary_to_term(remote_pid),
      make_ref(),
      port,
      fn x -> x end,
      &Enum.map/2,
      Event.new(event_id: 1, event_type: :nested),
      Map.put(Event.new(event_id: 2), :__struct__, Other),
      DateTime.utc_now(),
      %{DateTime.utc_now() | calendar: :other}
    ]
  end

  # As EventStore routes: the normal NIF, or its dirty twin when it answers
  # :dirty (over the byte budget) or :invalid (the event fails the
  # validator's rules, which the dirty twin does not check).
  defp put(s, e) do
    case Native.store_put(s, e) do
      skip when skip in [:dirty, :invalid] -> Native.store_put_dirty(s, e)
      result -> result
    end
  end

  defp get(s, id) do
    case Native.store_get(s, id) do
      :dirty -> Native.store_get_dirty(s, id)
      result -> result
    end
  end

  test "every kind of term in data round-trips exactly" do
    s = new_store()
    terms = odd_terms()

    for {term, id} <- Enum.with_index(terms, 1) do
      e = event(id, data: term, correlation_id: "odd")
      assert {:ok, ^id} = put(s, e)
      assert get(s, id) === e
      odd = Map.put(e, :extra, term)
      assert {:ok, ^id} = put(s, odd)
      assert get(s, id) === odd
    end

    assert {:ok, all} = Native.store_get_by_correlation_dirty(s, "odd")
    assert length(all) == length(terms)
    whole = event(1000, data: terms, node: :other@host, parent_id: 1 <<< 70)
    assert {:ok, 1000} = put(s, whole)
    assert get(s, 1000) === whole
  end

  test "random nested terms round-trip exactly" do
    :rand.seed(:exsss, {1, 2, 3})
    s = new_store()

    for id <- 1..300 do
      e = event(id, data: random_term(4), wall_time: random_term(2))
      assert {:ok, ^id} = put(s, e)
      assert get(s, id) === e
    end
  end

  defp random_term(0), do: leaf(:rand.uniform(8))

  defp random_term(depth) do
    n = :rand.uniform(5) - 1

    case :rand.uniform(5) do
      1 -> List.to_tuple(for _ <- 1..n//1, do: random_term(depth - 1))
      2 -> for _ <- 1..n//1, do: random_term(depth - 1)
      3 -> Map.new(1..n//1, fn _ -> {random_term(depth - 1), random_term(depth - 1)} end)
      4 -> [random_term(depth - 1) | random_term(depth - 1)]
      5 -> random_term(0)
    end
  end

  defp leaf(1), do: :rand.uniform(1 <<< 70) - (1 <<< 69)
  defp leaf(2), do: :rand.uniform() * 1.0e10 - 5.0e9
  defp leaf(3), do: :crypto.strong_rand_bytes(:rand.uniform(80))
  defp leaf(4), do: Enum.random([:a, :b, nil, true, false, :"x y"])
  defp leaf(5), do: Enum.random([self(), make_ref()])
  defp leaf(6), do: <<:rand.uniform(255), :rand.uniform(7)::3>>
  defp leaf(7), do: :rand.uniform(100) - 50
  defp leaf(8), do: DateTime.utc_now()

  test "errors are {kind, detail} tuples" do
    s = new_store(1)
    assert {:error, {:invalid_input, detail}} = Native.store_put(s, event(1 <<< 64))
    assert is_binary(detail)
    bad_cid = %{event(1) | correlation_id: 5}
    assert :invalid = Native.store_put(s, bad_cid)
    assert :invalid = Native.store_put_batch(s, [event(2), bad_cid])
    assert {:error, {:invalid_input, _}} = Native.store_put_dirty(s, bad_cid)
    assert Native.store_get(s, 2) == nil

    results = for i <- 1..2000, do: Native.store_put_async(s, event(i))
    assert Enum.any?(results, &match?({:error, {:queue_full, _}}, &1))
  end

  test "wrong argument types raise ArgumentError, never :nif_panicked" do
    s = new_store()

    for fun <- [
          fn -> Native.store_put(s, :not_a_map) end,
          fn -> Native.store_put(:not_a_store, event(1)) end,
          fn -> Native.store_get(s, -1) end,
          fn -> Native.store_get(s, "1") end,
          fn -> Native.store_put_batch(s, [event(1) | :improper]) end,
          fn -> Native.store_get_by_correlation(s, :atom, 1) end,
          fn -> Native.store_get_by_correlation(s, "c", -1) end,
          fn -> Native.store_get_by_correlation_dirty(s, 1) end,
          fn -> Native.store_query_dirty(s, nil, nil, :event_id, -1, 0) end,
          fn -> Native.store_query(s, "type", nil, :event_id, 0, 0) end,
          fn -> Native.store_query(s, nil, {1, :x}, :event_id, 0, 0) end,
          fn -> Native.store_prune_shard(s, 1 <<< 70, 0) end,
          fn -> Native.store_prune_shard(s, 0, -1) end,
          fn -> Native.store_prune_shard_dirty(s, 0, :x) end,
          fn -> Native.store_new(-1, 0, 0, 1) end
        ] do
      assert_raise ArgumentError, fun
    end
  end

  test "dirty twins: :dirty over the 64 KiB budget, same results and errors as the normal NIFs" do
    s = new_store(1)
    fits = event(1, data: :binary.copy("x", 50_000), correlation_id: "c")
    over = event(2, data: :binary.copy("x", 70_000), correlation_id: "c")
    assert {:ok, 1} = Native.store_put(s, fits)
    assert :dirty = Native.store_put(s, over)
    assert :dirty = Native.store_put_batch(s, [over])
    assert :dirty = Native.store_put_async(s, over)
    assert Native.store_get(s, 2) == nil
    assert {:ok, 2} = Native.store_put_dirty(s, over)
    assert :dirty = Native.store_get(s, 2)
    assert Native.store_get_dirty(s, 2) == over
    assert Native.store_get_dirty(s, 1) == fits
    assert Native.store_get_dirty(s, 3) == nil
    assert :dirty = Native.store_query(s, nil, nil, :event_id, 0, 2)
    assert {:ok, [^fits]} = Native.store_query(s, nil, nil, :event_id, 0, 1)
    assert :dirty = Native.store_get_by_correlation(s, "c", 10)
    assert {:ok, [3, 4]} = Native.store_put_batch_dirty(s, [event(3), event(4)])
    assert {:ok, :ok} = Native.store_put_async_dirty(s, event(5))
    assert {:error, {:invalid_input, _}} = Native.store_put_dirty(s, event(1 <<< 64))
    assert {:error, {:invalid_input, _}} = Native.store_put_batch_dirty(s, [event(1 <<< 64)])
    # Whether the 1-slot queue fills depends on the worker's pace (the
    # overload suite and the core's tests make it fill); each answer must be
    # one of the two shapes.
    for i <- 6..100 do
      assert Native.store_put_async_dirty(s, event(i)) in [
               {:ok, :ok},
               {:error, {:queue_full, "event store queue full (capacity 1)"}}
             ]
    end

    for fun <- [
          fn -> Native.store_put_dirty(s, :not_a_map) end,
          fn -> Native.store_put_batch_dirty(s, [event(1) | :improper]) end,
          fn -> Native.store_put_async_dirty(:not_a_store, event(1)) end,
          fn -> Native.store_get_dirty(s, -1) end
        ] do
      assert_raise ArgumentError, fun
    end
  end

  test "normal writes decline what they cannot bound, wherever it is in the event" do
    s = new_store()
    big_cid = event(1, correlation_id: :binary.copy("c", 70_000))
    fun_wall = event(2, wall_time: %{DateTime.utc_now() | time_zone: fn -> :tz end})
    deep = event(3, data: Enum.reduce(1..100, :leaf, &{&1, &2}))
    many_terms = event(4, data: List.to_tuple(Enum.to_list(1..5_000)))

    for e <- [big_cid, fun_wall] do
      assert :dirty = Native.store_put(s, e)
      assert :dirty = Native.store_put_batch(s, [event(10), e])
      assert Native.store_get(s, 10) == nil
      assert {:ok, id} = Native.store_put_dirty(s, e)
      assert Native.store_get_dirty(s, id) == e
    end

    # Deeper, or more terms, than the store's own form takes, within the
    # byte budget: stored on the normal scheduler.
    assert {:ok, 3} = Native.store_put(s, deep)
    assert Native.store_get(s, 3) == deep
    assert {:ok, 4} = Native.store_put(s, many_terms)
    assert Native.store_get(s, 4) == many_terms
    # A batch answers :invalid when any event fails validation, even after
    # one the store would refuse.
    assert :invalid = Native.store_put_batch(s, [event(1 <<< 64), %{event(5) | pid: 1}])
    assert {:error, {:invalid_input, _}} = Native.store_put_batch(s, [event(5), event(1 <<< 64)])
    assert Native.store_get(s, 5) == nil
  end

  test "store_close: drains the queue, frees events, then writes fail with :store_closed" do
    s = new_store(1000)
    {:ok, 1} = Native.store_put(s, event(1))
    for i <- 2..500, do: {:ok, :ok} = Native.store_put_async(s, event(i))
    assert {:ok, :ok} = Native.store_close(s)
    assert {:ok, :ok} = Native.store_close(s)
    stats = Map.new(elem(Native.store_stats(s), 1))
    assert %{events_stored: 500, current_event_count: 0, async_queue_len: 0} = stats
    assert Native.store_get(s, 1) == nil
    assert {:error, {:store_closed, detail}} = Native.store_put(s, event(2))
    assert is_binary(detail)
    assert {:error, {:store_closed, _}} = Native.store_put_async(s, event(3))
    assert {:error, {:store_closed, _}} = Native.store_put_batch_dirty(s, [event(4)])
    assert {:ok, []} = Native.store_query(s, nil, nil, :event_id, 0, 0)
    assert_raise ArgumentError, fn -> Native.store_close(:not_a_store) end
  end

  test "the handle survives garbage collection and keeps its data" do
    s = new_store()
    {:ok, 1} = Native.store_put(s, event(1))
    :erlang.garbage_collect()
    assert %Event{event_id: 1} = Native.store_get(s, 1)
  end

  describe "small maps read from their heap words" do
    test "the layout is verified at load on this VM" do
      assert %{small_map_layout: true} = Native.native_constants()
    end

    test "maps of every size around the small-map limit round-trip exactly" do
      s = new_store()

      for n <- 0..34 do
        data =
          Map.new(1..n//1, fn i ->
            key = Enum.at([:"k#{i}", i * 1_000, "k#{i}", {i}], rem(i, 4))
            {key, %{at: i, bin: "v#{i}", list: [i, -i], wall: ~U[2026-01-01 00:00:00Z]}}
          end)

        e = event(100 + n, data: data, correlation_id: "m#{n}")
        assert {:ok, _} = Native.store_put(s, e)
        assert Native.store_get(s, 100 + n) === e
      end
    end
  end
end
