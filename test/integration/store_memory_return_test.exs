defmodule ElixirScope.Foundation.Integration.StoreMemoryReturnTest do
  # The memory of a closed store goes back to the system (closing a store
  # asks the library's allocator to return its free memory).
  # Not async: it reads the OS process's resident memory.
  use ExUnit.Case, async: false

  alias ElixirScope.Foundation.Services.EventStore
  alias ElixirScope.Foundation.Types.Event

  @events 300_000

  defp rss do
    Enum.each(Process.list(), &:erlang.garbage_collect/1)
    [kb] = Regex.run(~r/VmRSS:\s+(\d+)/, File.read!("/proc/self/status"), capture: :all_but_first)
    String.to_integer(kb) * 1024
  end

  defp wait_until(fun, deadline) do
    cond do
      fun.() -> true
      System.monotonic_time(:millisecond) > deadline -> false
      true -> Process.sleep(100) && wait_until(fun, deadline)
    end
  end

  @tag timeout: 120_000
  test "a closed store's memory is handed back to the system" do
    before = rss()
    ns = {:test, make_ref()}
    spec = {EventStore, namespace: ns, max_events: 0, max_age_seconds: 0}
    start_supervised!(Supervisor.child_spec(spec, id: :memory_store, restart: :temporary))

    1..@events
    |> Stream.chunk_every(1000)
    |> Enum.each(fn ids ->
      events =
        for id <- ids,
            do:
              Event.new(
                event_id: id,
                event_type: :bulk,
                timestamp: id,
                data: %{
                  n: id,
                  text: "sixty-four bytes of payload, more or less, for every event."
                }
              )

      {:ok, _} = EventStore.store_batch(events, namespace: ns)
    end)

    full = rss()
    grown = full - before
    assert grown > 50 * 1_048_576, "the store took only #{div(grown, 1_048_576)} MB"

    :ok = stop_supervised(:memory_store)
    deadline = System.monotonic_time(:millisecond) + 30_000
    returned? = wait_until(fn -> rss() < before + div(grown, 2) end, deadline)

    assert returned?,
           "resident memory: #{div(before, 1_048_576)} MB before, #{div(full, 1_048_576)} MB " <>
             "full, #{div(rss(), 1_048_576)} MB 30 s after the store closed"
  end
end
