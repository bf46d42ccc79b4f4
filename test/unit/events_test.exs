defmodule ElixirScope.Foundation.EventsTest do
  # Uses the :production event store: not async.
  use ExUnit.Case, async: false

  alias ElixirScope.Foundation.Events
  alias ElixirScope.Foundation.Types.{Error, Event}

  setup do
    :ok = Events.initialize()
    :ok = ElixirScope.Foundation.Services.EventStore.reset_state()
    :ok
  end

  defp ids({:ok, events}), do: Enum.map(events, & &1.event_id)

  describe "building events" do
    test "new_event keeps the caller's id and uses millisecond timestamps" do
      before = System.monotonic_time(:millisecond)

      assert {:ok, %Event{event_id: 42, event_type: :x, data: %{a: 1}} = e} =
               Events.new_event(:x, %{a: 1}, event_id: 42)

      assert e.timestamp >= before and e.timestamp <= System.monotonic_time(:millisecond)
      assert {:error, %Error{error_type: :validation_failed}} = Events.new_event(nil, %{})
    end

    test "debug_new_event returns the event or raises" do
      assert %Event{event_type: :t} = Events.debug_new_event(:t, 1)

      assert_raise RuntimeError, "Failed to create debug event", fn ->
        Events.debug_new_event(nil, 1)
      end
    end

    test "function_entry, function_exit and state_change" do
      big = [String.duplicate("x", 20_000)]

      assert {:ok, %Event{event_type: :function_entry, data: %{args: %{truncated: true}}}} =
               Events.function_entry(M, :f, 1, big)

      assert {:ok, %Event{event_type: :function_exit, data: %{result: {:ok, 1}}}} =
               Events.function_exit(M, :f, 1, 9, {:ok, 1}, 100, :normal)

      assert {:ok, %Event{data: %{state_diff: :changed}}} = Events.state_change(self(), :cb, 1, 2)

      assert {:ok, %Event{data: %{state_diff: :no_change}}} =
               Events.state_change(self(), :cb, 1, 1)
    end

    test "serialize / deserialize / serialized_size" do
      {:ok, e} = Events.new_event(:t, %{u: "ü", t: {1, <<0, 1>>}})
      {:ok, bin} = Events.serialize(e)
      assert {:ok, ^e} = Events.deserialize(bin)
      assert {:ok, byte_size(bin)} == Events.serialized_size(e)
      assert {:error, %Error{error_type: :deserialization_failed}} = Events.deserialize("garbage")
    end
  end

  describe "serialization scheduling (docs/architecture.md, Scheduler safety)" do
    alias ElixirScope.Foundation.Test.NativeCalls

    defp serialize_calls(fun), do: NativeCalls.traced(fun, "serialize_")

    test "small events are encoded after a size check, big ones by the dirty NIF, same bytes" do
      {:ok, small} = Events.new_event(:t, %{payload: String.duplicate("x", 300)})
      {:ok, big} = Events.new_event(:t, %{items: for(i <- 1..20_000, do: {i, :item, [i]})})

      for {e, calls} <- [
            {small, [:serialize_small]},
            {big, [:serialize_small, :serialize_dirty]}
          ] do
        bin = :erlang.term_to_binary(e, [:compressed])
        assert {{:ok, ^bin}, ^calls} = serialize_calls(fn -> Events.serialize(e) end)
        size = byte_size(bin)
        assert {{:ok, ^size}, ^calls} = serialize_calls(fn -> Events.serialized_size(e) end)
        assert {:ok, ^e} = Events.deserialize(bin)
      end
    end

    test "atoms count by their spelling: many long atoms take the dirty NIF" do
      long = fn i -> String.to_atom("atom_#{i}_" <> String.duplicate("x", 240)) end
      # 40 distinct 250-character atoms: ~10 KB encoded (over the 8 KiB
      # budget), though only 40 terms.
      {:ok, e} = Events.new_event(:t, %{atoms: Enum.map(1..40, long)})
      {:ok, few} = Events.new_event(:t, %{atoms: Enum.map(1..10, long)})

      for {event, calls} <- [
            {e, [:serialize_small, :serialize_dirty]},
            {few, [:serialize_small]}
          ] do
        bin = :erlang.term_to_binary(event, [:compressed])
        assert {{:ok, ^bin}, ^calls} = serialize_calls(fn -> Events.serialize(event) end)
      end
    end

    test "a fun in the data cannot be sized cheaply: the dirty NIF encodes it" do
      {:ok, e} = Events.new_event(:t, %{f: &Enum.map/2, a: 1})
      bin = :erlang.term_to_binary(e, [:compressed])

      assert {{:ok, ^bin}, [:serialize_small, :serialize_dirty]} =
               serialize_calls(fn -> Events.serialize(e) end)
    end

    test "binaries decoding to over 64 KiB take the dirty NIF, smaller ones the BIF" do
      {:ok, small} = Events.new_event(:t, %{payload: String.duplicate("x", 300)})
      {:ok, big} = Events.new_event(:t, %{items: for(i <- 1..12_000, do: {i, :item, [i]})})
      # 100 KB that compress to ~200 bytes: the header's size decides.
      {:ok, packed} = Events.new_event(:t, %{blob: :binary.copy("ab", 50_000)})
      {:ok, edge} = Events.new_event(:t, %{blob: :binary.copy("y", 64 * 1024 - 1_000)})
      assert byte_size(:erlang.term_to_binary(edge)) in (64 * 1024 - 1_000)..(64 * 1024)

      for {e, compressed_calls, plain_calls} <- [
            {small, [], []},
            {big, [:deserialize_dirty], [:deserialize_dirty]},
            {packed, [:deserialize_dirty], [:deserialize_dirty]},
            {edge, [], []}
          ] do
        for {bin, calls} <- [
              {:erlang.term_to_binary(e, [:compressed]), compressed_calls},
              {:erlang.term_to_binary(e), plain_calls}
            ] do
          assert {{:ok, ^e}, ^calls} =
                   NativeCalls.traced(fn -> Events.deserialize(bin) end, "deserialize_")
        end
      end

      garbage = <<131, 80, 100_000::32, "not zlib">>

      assert {{:error, %Error{error_type: :deserialization_failed}}, [:deserialize_dirty]} =
               NativeCalls.traced(fn -> Events.deserialize(garbage) end, "deserialize_")

      assert {{:error, %Error{error_type: :deserialization_failed}}, []} =
               NativeCalls.traced(fn -> Events.deserialize("garbage") end, "deserialize_")
    end
  end

  describe "storage" do
    test "store, get, batch and stats through the facade" do
      {:ok, e} =
        Events.new_event(:t, %{pid: self()}, event_id: 7, correlation_id: "c", parent_id: 3)

      assert {:ok, 7} = Events.store(e)
      assert {:ok, ^e} = Events.get(7)
      assert {:error, %Error{code: 3001}} = Events.get(8)
      {:ok, b1} = Events.new_event(:t, 1, event_id: 1)
      assert {:ok, [1]} = Events.store_batch([b1])
      assert {:ok, %{current_event_count: 2}} = Events.stats()
      assert Events.available?()
      assert {:ok, %{status: :running}} = Events.status()
    end

    test "query accepts a map or a keyword list; other terms raise" do
      for i <- 1..5,
          do: {:ok, _} = Events.store(Event.new(event_id: i, event_type: :q, timestamp: i))

      assert ids(Events.query(%{limit: 2})) == [1, 2]
      assert ids(Events.query(limit: 1, limit: 3, offset: 1)) == [2, 3, 4]
      assert_raise FunctionClauseError, fn -> Events.query("x") end
    end

    test "correlation chain, time range, recent (newest first), prune" do
      for {id, ts} <- [{1, 10}, {2, 30}, {3, 20}, {4, 40}] do
        {:ok, _} = Events.store(Event.new(event_id: id, timestamp: ts, correlation_id: "cc"))
      end

      assert ids(Events.get_correlation_chain("cc")) == [1, 3, 2, 4]
      assert ids(Events.get_time_range(15, 30)) == [3, 2]
      assert ids(Events.get_recent(2)) == [4, 2]
      assert length(ids(Events.get_recent())) == 4
      assert {:ok, 2} = Events.prune_before(25)
      assert ids(Events.get_by_correlation("cc")) == [2, 4]
    end

    test "unavailable namespace gives 3000" do
      ns = [namespace: {:test, make_ref()}]
      assert {:error, %Error{code: 3000, error_type: :service_unavailable}} = Events.get(1, ns)
    end
  end
end
