defmodule ElixirScope.Foundation.Events.GracefulDegradationTest do
  # Uses the :production event store and the node-wide fallback buffer: not async.
  use ExUnit.Case, async: false

  @moduletag :capture_log

  alias ElixirScope.Foundation.Events
  alias ElixirScope.Foundation.Events.GracefulDegradation, as: GD
  alias ElixirScope.Foundation.Types.{Error, Event}

  setup do
    _ = GD.take_buffered_events()
    on_exit(fn -> GD.take_buffered_events() end)
  end

  describe "new_event_safe/2" do
    test "returns the bare event, even with pids, refs and funs in the data" do
      data = %{pid: self(), ref: make_ref(), fun: fn -> :ok end}
      assert %Event{event_type: :safe_test, data: ^data} = GD.new_event_safe(:safe_test, data)
    end

    test "an invalid event becomes the minimal event" do
      before = System.system_time(:microsecond)
      event = GD.new_event_safe(nil, %{a: 1})

      assert %Event{event_type: nil, correlation_id: nil, parent_id: nil} = event
      assert is_integer(event.event_id) and event.event_id > 0
      assert event.timestamp >= before and event.timestamp <= System.system_time(:microsecond)
      assert event.pid == self() and event.node == node()

      assert %{
               original_data_error: "Failed to serialize original data",
               fallback_info: %{
                 original_data_type: :map,
                 sanitization_attempted: true,
                 timestamp: %DateTime{}
               }
             } = event.data
    end

    test "data too large for the validator also gives the minimal event" do
      event = GD.new_event_safe(:big, :binary.copy("x", 2_000_000))

      assert %Event{event_type: :big, data: %{fallback_info: %{original_data_type: :binary}}} =
               event
    end
  end

  describe "serialize_safe/1 and deserialize_safe/1" do
    test "a normal event serializes as Events.serialize/1 does and round-trips" do
      {:ok, event} = Events.new_event(:round, %{list: [1, {2, "three"}], pid: self()})
      binary = GD.serialize_safe(event)
      assert {:ok, binary} == Events.serialize(event)
      assert GD.deserialize_safe(binary) == {:ok, event}
    end

    test "a non-struct falls back to JSON built in Rust, decoded back to an Event" do
      pid = self()
      ref = make_ref()

      event = %{
        event_type: :json_case,
        event_id: 42,
        timestamp: 7,
        wall_time: ~U[2026-01-02 03:04:05Z],
        node: node(),
        pid: pid,
        data: %{"h5 unknown key zq" => [1.5, nil], pid: pid, ref: ref, tuple: {1, :a}}
      }

      binary = GD.serialize_safe(event)
      assert {:json_fallback, json} = :erlang.binary_to_term(binary)
      assert is_binary(json) and byte_size(json) > 0

      assert {:ok, %Event{} = decoded} = GD.deserialize_safe(binary)
      assert decoded.event_type == :json_case
      assert decoded.event_id == 42 and decoded.timestamp == 7
      assert decoded.wall_time == "2026-01-02T03:04:05Z"
      assert decoded.node == to_string(node())
      assert decoded.pid == inspect(pid)

      assert decoded.data == %{
               "h5 unknown key zq" => [1.5, nil],
               pid: inspect(pid),
               ref: inspect(ref),
               tuple: [1, "a"]
             }
    end

    test "data JSON cannot hold (nested too deep) gives the minimal fallback" do
      deep = Enum.reduce(1..500, :bottom, fn _, acc -> [acc] end)
      binary = GD.serialize_safe(%{event_type: :deep, timestamp: 1, data: deep})

      assert {:minimal_fallback,
              %{event_type: :deep, timestamp: 1, error: "Serialization failed"}} =
               :erlang.binary_to_term(binary)

      assert {:ok, %{fallback_data: %{event_type: :deep}, warning: "Minimal fallback used"}} =
               GD.deserialize_safe(binary)

      assert is_binary(GD.serialize_safe(42)) and byte_size(GD.serialize_safe(42)) > 0
    end

    test "garbage never raises" do
      :rand.seed(:exsss, {1, 2, 3})

      for _ <- 1..200 do
        garbage = :crypto.strong_rand_bytes(:rand.uniform(64))
        assert {:error, _} = GD.deserialize_safe(garbage)
      end

      assert {:error, %Error{error_type: :deserialization_failed}} = GD.deserialize_safe("nope")

      assert {:error, _} =
               GD.deserialize_safe(:erlang.term_to_binary({:json_fallback, "{broken"}))
    end
  end

  describe "store_safe/1 and the fallback buffer" do
    test "a storable event is stored and returns its id" do
      {:ok, event} = Events.new_event(:stored_safely, %{n: 1})
      assert {:ok, id} = GD.store_safe(event)
      assert {:ok, ^event} = Events.get(id)
      assert GD.buffered_events() == []
    end

    test "a raising store buffers the event, newest first, and the buffer outlives the caller" do
      assert :ok = GD.store_safe({:not_an_event, 1})

      {pid, ref} = spawn_monitor(fn -> :ok = GD.store_safe({:not_an_event, 2}) end)
      assert_receive {:DOWN, ^ref, :process, ^pid, :normal}

      assert GD.buffered_events() == [{:not_an_event, 2}, {:not_an_event, 1}]
    end

    test "at most 100 events are kept" do
      for i <- 1..120, do: :ok = GD.store_safe({:not_an_event, i})
      buffered = GD.buffered_events()
      assert length(buffered) == 100
      assert hd(buffered) == {:not_an_event, 120}
      assert List.last(buffered) == {:not_an_event, 21}
    end

    test "flush_buffer/0 retries oldest first; events that still fail stay buffered" do
      :ok = GD.store_safe({:not_an_event, :a})
      :ok = GD.store_safe({:not_an_event, :b})
      assert %{stored: 0, failed: 2} = GD.flush_buffer()
      assert GD.buffered_events() == [{:not_an_event, :b}, {:not_an_event, :a}]
    end
  end

  describe "query_safe/1" do
    test "passes results through; a raising query gives the warning 3-tuple" do
      {:ok, event} = Events.new_event(:queried_safely, %{})
      {:ok, _} = Events.store(event)
      assert {:ok, events} = GD.query_safe(%{event_type: :queried_safely})
      assert Enum.any?(events, &(&1.event_id == event.event_id))
      assert {:ok, [], %{warning: "Service temporarily unavailable"}} = GD.query_safe(:bad_query)
    end
  end
end
