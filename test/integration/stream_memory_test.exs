defmodule ElixirScope.Foundation.Integration.StreamMemoryTest do
  # Events.stream/2 over a million stored events: every event once, in
  # order, while the consuming process never holds more than a few pages.
  use ExUnit.Case, async: true

  alias ElixirScope.Foundation.Events
  alias ElixirScope.Foundation.Services.EventStore
  alias ElixirScope.Foundation.Types.Event

  @total 1_000_000
  @page 1000
  # A million events as a list take hundreds of megabytes; a page of a
  # thousand takes well under one.
  @max_bytes 8 * 1024 * 1024

  @tag timeout: 300_000
  test "streams a million events with memory bounded by a page" do
    ns = {:test, make_ref()}
    spec = {EventStore, namespace: ns, max_events: 0, max_age_seconds: 0}
    start_supervised!(Supervisor.child_spec(spec, restart: :temporary))
    opts = [namespace: ns]

    1..@total
    |> Stream.chunk_every(10_000)
    |> Enum.each(fn ids ->
      events =
        for id <- ids,
            do: Event.new(event_id: id, event_type: :bulk, timestamp: id, data: %{n: id})

      {:ok, _} = EventStore.store_batch(events, opts)
    end)

    assert {:ok, %{current_event_count: @total}} = EventStore.stats(opts)

    consumer =
      Task.async(fn ->
        :erlang.garbage_collect()

        Events.stream(%{order_by: :event_id}, opts ++ [page_size: @page])
        |> Enum.reduce({0, 0, 0}, fn event, {count, last, peak} ->
          # Every event exactly once: ids strictly ascending, none skipped.
          true = event.event_id == last + 1

          peak =
            if rem(count, 10_000) == 0,
              do: max(peak, elem(Process.info(self(), :memory), 1)),
              else: peak

          {count + 1, event.event_id, peak}
        end)
      end)

    {count, last, peak} = Task.await(consumer, 240_000)
    assert count == @total
    assert last == @total
    assert peak < @max_bytes, "consumer peaked at #{peak} bytes"
  end
end
