defmodule ElixirScope.Foundation.Native.AuditTest do
  # The audit write of ConfigServer: the event it stores from its fields
  # reads back as the `%Event{}` the server would have built and stored.
  use ExUnit.Case, async: true

  alias ElixirScope.Foundation.Native
  alias ElixirScope.Foundation.Services.ConfigServer.Audit
  alias ElixirScope.Foundation.Types.Event

  defp new_store, do: elem(Native.store_new(4, 0, 0, 16), 1)

  defp built(id, type, timestamp, wall_us, data) do
    %Event{
      event_id: id,
      event_type: type,
      timestamp: timestamp,
      wall_time: DateTime.from_unix!(wall_us, :microsecond),
      node: node(),
      pid: self(),
      correlation_id: nil,
      parent_id: nil,
      data: data
    }
  end

  test "reads back equal to the built event, across dates and data shapes" do
    store = new_store()

    cases = [
      {System.os_time(:microsecond),
       %{
         path: [:ai, :provider],
         new_value: :mock,
         previous_value: {:ok, :openai},
         timestamp: -576_460_750_000
       }},
      {0, %{timestamp: 1, reset_from_updates_count: 0}},
      {-1,
       %{path: [:dev, :debug_mode], new_value: true, previous_value: {:ok, false}, timestamp: 0}},
      # 2000-02-29 and the last microsecond of 2099
      {951_782_400_123_456,
       %{path: [:a], new_value: 0.25, previous_value: {:ok, 1}, timestamp: 7}},
      {4_102_444_799_999_999,
       %{path: [], new_value: 2 ** 70, previous_value: {:ok, nil}, timestamp: 7}},
      # year 1
      {-62_135_596_800_000_000, %{}}
    ]

    for {{wall_us, data}, i} <- Enum.with_index(cases, 1) do
      id = 1_000 + i
      timestamp = -576_460_752_303 + i

      assert {:ok, ^id} =
               Native.store_put_audit(
                 store,
                 id,
                 :config_updated,
                 timestamp,
                 wall_us,
                 node(),
                 self(),
                 data
               )

      want = built(id, :config_updated, timestamp, wall_us, data)
      assert Native.store_get(store, id) == want
      assert want.wall_time == Audit.utc_from_unix_us(wall_us)
    end

    assert {:ok, [%Event{event_id: 1_001}]} =
             Native.store_query(
               store,
               :config_updated,
               {-576_460_752_302, -576_460_752_302},
               :timestamp,
               0,
               0
             )
  end

  test "a field the native form does not take is an ArgumentError; nothing is stored" do
    store = new_store()
    data = %{timestamp: 1, reset_from_updates_count: 0}
    args = [1, :config_reset, 1, 0, node(), self(), data]

    for {position, bad} <- [{0, 2 ** 64}, {1, "type"}, {4, "node"}, {5, :not_a_pid}] do
      bad_args = List.replace_at(args, position, bad)
      assert_raise ArgumentError, fn -> apply(Native, :store_put_audit, [store | bad_args]) end
    end

    assert Native.store_get(store, 1) == nil
    assert {:ok, 1} = apply(Native, :store_put_audit, [store | args])
  end
end
