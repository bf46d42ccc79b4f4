defmodule ElixirScope.Foundation.EventArgTest do
  # Functions that take events raise an ArgumentError naming the expected
  # struct and showing (truncated) what they got; valid calls are unchanged.
  use ExUnit.Case, async: true

  alias ElixirScope.Foundation.Events
  alias ElixirScope.Foundation.Services.EventStore

  @expected "expected an %ElixirScope.Foundation.Types.Event{}"

  test "Events.store/1 with a non-event" do
    error = assert_raise ArgumentError, fn -> Events.store("not an event") end
    assert error.message =~ @expected
    assert error.message =~ ~s(got: "not an event")
  end

  test "EventStore.store/2 and store_async/2 with non-events" do
    assert_raise ArgumentError, ~r/#{Regex.escape(@expected)}.*got: %\{event_id: 1\}/, fn ->
      EventStore.store(%{event_id: 1})
    end

    assert_raise ArgumentError, ~r/got: :nope/, fn -> EventStore.store_async(:nope) end
  end

  test "store_batch with a non-list or a list holding a non-event names the position" do
    {:ok, event} = Events.new_event(:ok_event, %{})

    error = assert_raise ArgumentError, fn -> Events.store_batch([event, 42]) end
    assert error.message =~ "expected a list of %ElixirScope.Foundation.Types.Event{}"
    assert error.message =~ "got at index 1: 42"

    error = assert_raise ArgumentError, fn -> EventStore.store_batch(:not_a_list) end
    assert error.message =~ "got: :not_a_list"
  end

  test "serialize/1 and serialized_size/1 with non-events" do
    assert_raise ArgumentError, ~r/got: nil/, fn -> Events.serialize(nil) end
    assert_raise ArgumentError, ~r/got: \[1, 2\]/, fn -> Events.serialized_size([1, 2]) end
  end

  test "what was received is shown truncated" do
    big = String.duplicate("a", 100_000)

    error =
      assert_raise ArgumentError, fn ->
        Events.store(%{data: big, more: Enum.to_list(1..1000)})
      end

    assert String.length(error.message) < 400
    assert error.message =~ "..."
  end

  test "valid calls are unchanged" do
    {:ok, event} = Events.new_event(:arg_check, %{n: 1})
    assert {:ok, id} = Events.store(event)
    assert {:ok, %{data: %{n: 1}}} = Events.get(id)
    assert {:ok, [_]} = Events.store_batch([%{event | event_id: event.event_id + 1}])
    assert {:ok, bin} = Events.serialize(event)
    assert {:ok, size} = Events.serialized_size(event)
    assert byte_size(bin) == size
  end
end
