# Live subscriptions: what they cost writers, and how fast they deliver.
#
#   MIX_ENV=prod mix run bench/subscriptions.exs
#   SHORT=1 MIX_ENV=prod mix run bench/subscriptions.exs   # fewer events
#
# 1. Store cost: store/1 from 1 and 8 processes and store_batch/1 of 100,
#    with 0, 1 and 10 subscribers attached (reading and acknowledging), and
#    with 1 and 10 stalled subscribers (never reading: their buffers stay
#    full and drop). The original's store (bench/support/original.exs) runs
#    in the same run for reference; it has no subscriptions.
# 2. Delivery: events per second from the first store until the subscriber
#    has received (and acknowledged) the last one, live and as a catch-up
#    (`from: :start`) over events already stored.
Code.require_file("support/harness.exs", __DIR__)
Code.require_file("support/workload.exs", __DIR__)
Code.require_file("../test/support/validation_reference.ex", __DIR__)
Code.require_file("support/reference_event_store.exs", __DIR__)
Code.require_file("support/original.exs", __DIR__)

defmodule Bench.Subscriptions do
  alias Bench.{Harness, Original}
  alias ElixirScope.Foundation.Events

  import Bench.Workload, only: [event: 1, scale: 1]

  defp reset do
    Application.stop(:elixir_scope_foundation)
    {:ok, _} = Application.ensure_all_started(:elixir_scope_foundation)
  end

  # A subscriber that reads and acknowledges everything; it reports its
  # count when asked.
  defp reader(filter, opts \\ []) do
    parent = self()

    pid =
      spawn(fn ->
        {:ok, ref} = Events.subscribe(filter, opts)
        send(parent, {:subscribed, self()})
        read(ref, 0)
      end)

    receive do: ({:subscribed, ^pid} -> pid)
  end

  defp read(ref, n) do
    receive do
      {:foundation_events, ^ref, events} ->
        k = length(events)
        Events.ack(ref, k)
        read(ref, n + k)

      # Dropped events count as seen: the writers outran the buffer.
      {:foundation_events_dropped, ^ref, k} ->
        read(ref, n + k)

      {:count, from} ->
        send(from, {:count, self(), n})
        read(ref, n)
    end
  end

  defp stalled(filter) do
    parent = self()

    pid =
      spawn(fn ->
        {:ok, _} = Events.subscribe(filter, max_in_flight: 100, buffer: 1000)
        send(parent, {:subscribed, self()})
        Process.sleep(:infinity)
      end)

    receive do: ({:subscribed, ^pid} -> pid)
  end

  defp filters(10) do
    for(_ <- 1..4, do: %{}) ++
      for(t <- 0..2, do: %{event_type: Bench.Workload.type(t)}) ++
      for c <- 0..2, do: %{correlation_id: "corr-#{c}"}
  end

  defp attach(:none), do: []
  defp attach({:readers, n}), do: Enum.map(filters_for(n), &reader/1)
  defp attach({:stalled, n}), do: Enum.map(filters_for(n), &stalled/1)

  defp filters_for(1), do: [%{}]
  defp filters_for(10), do: filters(10)

  defp store_rates(setup) do
    reset()
    pids = attach(setup)
    n = scale(50_000)

    one =
      Harness.ops_per_sec(fn -> Events.store(event(System.unique_integer([:positive]))) end,
        iterations: n
      )

    per = div(n, 8)

    eight =
      Harness.concurrent_ops_per_sec(8, per, fn w, i ->
        Events.store(event(10_000_000 + w * 1_000_000 + i))
      end)

    batches = for b <- 1..div(n, 100), do: for(i <- 1..100, do: event(50_000_000 + b * 100 + i))
    {batch_us, _} = :timer.tc(fn -> Enum.each(batches, &Events.store_batch/1) end)
    Enum.each(pids, &Process.exit(&1, :kill))
    {one, eight, n / max(batch_us, 1) * 1_000_000}
  end

  def store_cost do
    ctx = Original.start()
    n = scale(50_000)

    orig1 =
      Harness.ops_per_sec(
        fn -> Original.store(ctx, event(System.unique_integer([:positive]))) end,
        iterations: n
      )

    Original.stop(ctx)

    setups = [
      {"0 subscribers", :none},
      {"1 subscriber (reading)", {:readers, 1}},
      {"10 subscribers (reading)", {:readers, 10}},
      {"1 subscriber (stalled)", {:stalled, 1}},
      {"10 subscribers (stalled)", {:stalled, 10}}
    ]

    # A first round warms the code and the allocator up; it is not shown.
    _ = store_rates(:none)
    results = Enum.map(setups, fn {name, setup} -> {name, store_rates(setup)} end)
    {_, {base1, base8, base_b}} = hd(results)

    rows =
      for {name, {one, eight, batch}} <- results do
        [name, one, one / base1, eight, eight / base8, batch, batch / base_b, one / orig1]
      end

    Harness.table(
      "store cost with subscribers attached (events/s; ratio to 0 subscribers)",
      [
        "attached",
        "store 1 proc",
        "ratio",
        "store 8 procs",
        "ratio",
        "batch 100",
        "ratio",
        "1 proc vs original"
      ],
      rows
    )
  end

  def delivery do
    n = scale(200_000)
    reset()
    pid = reader(%{}, max_in_flight: 1000, buffer: n)
    batches = Enum.chunk_every(1..n, 100)

    {live_us, _} =
      :timer.tc(fn ->
        Enum.each(batches, fn ids -> {:ok, _} = Events.store_batch(Enum.map(ids, &event/1)) end)
        wait_count(pid, n)
      end)

    Process.exit(pid, :kill)
    # The catch-up reads what the store still holds (retention may have
    # evicted the oldest).
    {:ok, %{current_event_count: held}} = Events.stats()

    {catch_us, _} =
      :timer.tc(fn ->
        pid = reader(%{}, from: :start, max_in_flight: 1000)
        wait_count(pid, held)
        Process.exit(pid, :kill)
      end)

    {one_us, _} =
      :timer.tc(fn ->
        pid = reader(%{event_type: :type_3}, from: :start, max_in_flight: 1000)
        wait_count(pid, div(held, 10))
        Process.exit(pid, :kill)
      end)

    Harness.table(
      "delivery to one subscriber acknowledging every batch (#{Harness.format(n)} events of 64-byte payloads)",
      ["phase", "events", "events/s"],
      [
        ["live (stored in batches of 100)", n, n / live_us * 1_000_000],
        ["catch-up, every event (from: :start)", held, held / catch_us * 1_000_000],
        [
          "catch-up, one type of ten (from: :start)",
          div(held, 10),
          div(held, 10) / one_us * 1_000_000
        ]
      ]
    )
  end

  defp wait_count(pid, n) do
    send(pid, {:count, self()})

    receive do
      {:count, ^pid, got} when got >= n ->
        :ok

      {:count, ^pid, _} ->
        Process.sleep(1)
        wait_count(pid, n)
    end
  end
end

Bench.Subscriptions.store_cost()
Bench.Subscriptions.delivery()
