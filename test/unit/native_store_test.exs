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
    assert {:ok, 1} = Native.store_put(s, e)
    assert Native.store_get(s, 1) == e
    assert Native.store_get(s, 2) == nil

    assert {:ok, [2, 3]} =
             Native.store_put_batch(s, [event(2, timestamp: 1), event(3, timestamp: 10)])

    assert {:ok, [^e]} = Native.store_get_by_correlation(s, "c")
    assert {:ok, [%Event{event_id: 2}]} = Native.store_query(s, :test, {0, 1}, :timestamp, 0, 0)
    assert {:ok, [%Event{event_id: 1}]} = Native.store_query(s, nil, nil, :event_id, 0, 1)
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
          fn -> Native.store_get_by_correlation(s, :atom) end,
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
