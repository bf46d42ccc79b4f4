defmodule ElixirScope.Foundation.NativeStoreTest do
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
    assert {:ok, 1} = Native.store_prune_before(s, 2)
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
      assert {:ok, ^id} = Native.store_put(s, e)
      assert Native.store_get(s, id) === e
    end
  end

  test "errors are {kind, detail} tuples" do
    s = new_store(1)
    assert {:error, {:invalid_input, detail}} = Native.store_put(s, event(1 <<< 64))
    assert is_binary(detail)
    assert {:error, {:invalid_input, _}} = Native.store_put(s, %{event(1) | correlation_id: 5})

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
          fn -> Native.store_prune_before(s, 1 <<< 70) end,
          fn -> Native.store_new(-1, 0, 0, 1) end
        ] do
      assert_raise ArgumentError, fun
    end
  end

  test "the handle survives garbage collection and keeps its data" do
    s = new_store()
    {:ok, 1} = Native.store_put(s, event(1))
    :erlang.garbage_collect()
    assert %Event{event_id: 1} = Native.store_get(s, 1)
  end
end
