defmodule ElixirScope.Foundation.Types.EventTest do
  use ExUnit.Case, async: true

  alias ElixirScope.Foundation.Types.Event

  doctest Event

  describe "new/0,1" do
    test "defaults: :default type, unique positive id, native monotonic timestamp" do
      before = System.monotonic_time()
      event = Event.new()
      after_native = System.monotonic_time()

      assert event.event_type == :default
      assert is_integer(event.event_id) and event.event_id > 0
      # native units, not milliseconds
      assert before <= event.timestamp and event.timestamp <= after_native

      for field <- [:wall_time, :node, :pid, :correlation_id, :parent_id, :data] do
        assert Map.fetch!(event, field) == nil
      end
    end

    test "ids are unique" do
      ids = for _ <- 1..1000, do: Event.new().event_id
      assert length(Enum.uniq(ids)) == 1000
    end

    test "keyword fields override defaults; unknown keys are ignored" do
      event = Event.new(event_type: :custom, event_id: 7, timestamp: -5, data: %{a: 1}, bogus: 2)
      assert {event.event_type, event.event_id, event.timestamp} == {:custom, 7, -5}
      assert event.data == %{a: 1}
      refute Map.has_key?(event, :bogus)
    end

    test "an atom is the event type" do
      assert Event.new(:function_entry).event_type == :function_entry
      assert Event.new(:anything).event_type == :anything
      assert Event.new(nil).event_type == nil
      assert Event.new(true).event_type == true
      assert Event.new(false).event_type == false
    end

    test "empty list is new/0" do
      assert Event.new([]).event_type == :default
    end

    test "other input raises FunctionClauseError" do
      assert_raise FunctionClauseError, fn -> Event.new("type") end
      assert_raise FunctionClauseError, fn -> Event.new(%{event_type: :x}) end
    end
  end

  describe "empty/0 and enforcement" do
    test "empty/0 has every field nil" do
      event = Event.empty()
      assert %Event{} = event
      assert event |> Map.from_struct() |> Map.values() |> Enum.all?(&is_nil/1)
    end

    test "literal structs enforce event_type, event_id and timestamp" do
      assert_raise ArgumentError, fn ->
        Code.eval_string("%ElixirScope.Foundation.Types.Event{event_type: :x}")
      end

      {event, _} =
        Code.eval_string(
          "%ElixirScope.Foundation.Types.Event{event_type: :x, event_id: 1, timestamp: 0}"
        )

      assert event.data == nil
    end

    test "field order matches the contract" do
      assert Event.new() |> Map.from_struct() |> Map.keys() |> Enum.sort() ==
               Enum.sort([
                 :event_type,
                 :event_id,
                 :timestamp,
                 :wall_time,
                 :node,
                 :pid,
                 :correlation_id,
                 :parent_id,
                 :data
               ])
    end
  end
end
