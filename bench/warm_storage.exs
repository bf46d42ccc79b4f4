# Warm storage benchmark: the event store with and without its disk tier.
#
#   MIX_ENV=prod mix run bench/warm_storage.exs
#   RECOVERY=100000 mix run bench/warm_storage.exs      # smaller recovery sizes
#   ONLY=crash_fill mix run bench/warm_storage.exs && ONLY=crash_open mix run bench/warm_storage.exs
#   ONLY=sustained SUSTAINED=1600000 mix run bench/warm_storage.exs   # a long ingest
#   IDS=generated ONLY=ingest mix run bench/warm_storage.exs   # ids from Utils.generate_id/0
#
# Tables: ingest (4 concurrent writers of small events, single stores and
# batches of 100) hot-only vs warm per compression mode, best of three
# interleaved rounds, as the rate at the return of the last store and once
# the tier has applied its journal to its engine; reopen time with
# 100k and 1M events on disk; read latency from the hot and the warm tier;
# bytes on disk per event per compression mode; the disk bound. On
# request (`ONLY=sustained`): a long ingest, past what the journal absorbs,
# with the CPU time it takes per event.

defmodule Bench.WarmStorage do
  alias ElixirScope.Foundation.Services.EventStore
  alias ElixirScope.Foundation.Types.Event

  @writers 4
  @per_writer 10_000
  @rounds 3
  @types List.to_tuple(for i <- 0..9, do: :"type_#{i}")

  def event(i) do
    %Event{
      event_id: i,
      event_type: elem(@types, rem(i, 10)),
      timestamp: i,
      wall_time: nil,
      node: node(),
      pid: self(),
      correlation_id: "corr-#{rem(i, 1000)}",
      parent_id: nil,
      data: %{i: i, tag: "bench", user: "user-#{rem(i, 97)}"}
    }
  end

  def tmp(name), do: Path.join(System.tmp_dir!(), "warm-bench-#{name}-#{System.os_time()}")

  def start(opts) do
    ns = {:test, make_ref()}
    {:ok, _} = EventStore.start_link(opts ++ [namespace: ns, max_events: 0, max_age_seconds: 0])
    [namespace: ns]
  end

  def warm(dir, compression, mb \\ 10_000),
    do: [warm: [path: dir, max_size_mb: mb, compression: compression]]

  def du(dir) do
    {out, 0} = System.cmd("du", ["-sb", dir])
    out |> String.split() |> hd() |> String.to_integer()
  end

  def time(fun) do
    t0 = System.monotonic_time(:microsecond)
    result = fun.()
    {System.monotonic_time(:microsecond) - t0, result}
  end

  def row(cells), do: IO.puts(Enum.map_join(cells, " | ", &String.pad_leading(to_string(&1), 14)))

  # Events per second with @writers processes storing @per_writer events
  # each: {until the last store returned, until the warm tier has applied
  # them all (`stats/1` waits for that)}.
  def ingest(ns, batch) do
    t0 = System.monotonic_time(:microsecond)

    {us, _} =
      time(fn ->
        1..@writers
        |> Enum.map(fn w ->
          Task.async(fn ->
            ids = ids(w)

            if batch == 1 do
              Enum.each(ids, &({:ok, _} = EventStore.store(event(&1), ns)))
            else
              ids
              |> Enum.chunk_every(batch)
              |> Enum.each(
                &({:ok, _} = EventStore.store_batch(Enum.map(&1, fn i -> event(i) end), ns))
              )
            end
          end)
        end)
        |> Enum.each(&Task.await(&1, :infinity))
      end)

    {:ok, _} = EventStore.stats(ns)
    applied_us = System.monotonic_time(:microsecond) - t0
    rate = fn us -> round(@writers * @per_writer / (us / 1_000_000)) end
    {rate.(us), rate.(applied_us)}
  end

  # Writer `w`'s event ids: consecutive integers, or with IDS=generated
  # what `Utils.generate_id/0` makes (a count above the node's bits, ids of
  # all writers interleaved), as events from `Events.new_event/2` carry.
  defp ids(w) do
    if System.get_env("IDS") == "generated",
      do: for(_ <- 1..@per_writer, do: ElixirScope.Foundation.Utils.generate_id()),
      else: for(i <- 1..@per_writer, do: w * 10_000_000 + i)
  end

  # CPU time of this OS process so far, in microseconds (utime + stime of
  # /proc/self/stat, in clock ticks of 10 ms).
  defp cpu_us do
    [_, rest] = "/proc/self/stat" |> File.read!() |> String.split(") ", parts: 2)
    fields = String.split(rest)
    ticks = String.to_integer(Enum.at(fields, 11)) + String.to_integer(Enum.at(fields, 12))
    ticks * 10_000
  end

  # A long ingest: @writers processes store `n` small events in batches of
  # 100, hot-only and warm interleaved, two rounds, for two kinds of
  # events: `clock` events carry ids from `Utils.generate_id/0` and
  # timestamps from the clock, as events from `Events.new_event/2` do (all
  # writers' keys land at the end of every index); `ranges` events give each
  # writer its own range of ids and of timestamps, far apart (three of every
  # four keys land inside each index: the worst case for them). The warm
  # rates are the acknowledged one and the applied one (until `stats/1`,
  # which waits for the tier to have written everything); CPU is the whole
  # process's time per event, all threads (schedulers, the tier's and the
  # engine's).
  def sustained_table(n) do
    IO.puts("\n## Long ingest: #{n} events, #{@writers} writers, batches of 100\n")

    row([
      "events",
      "round",
      "store",
      "events/s",
      "applied/s",
      "vs hot",
      "applied vs hot",
      "CPU us/event"
    ])

    run = fn opts, kind ->
      ns = start(opts)
      {c0, t0} = {cpu_us(), System.monotonic_time(:microsecond)}

      1..@writers
      |> Enum.map(fn w ->
        Task.async(fn ->
          (w * 10_000_000 + 1)..(w * 10_000_000 + div(n, @writers))
          |> Stream.chunk_every(100)
          |> Enum.each(
            &({:ok, _} = EventStore.store_batch(Enum.map(&1, fn i -> event(i, kind) end), ns))
          )
        end)
      end)
      |> Enum.each(&Task.await(&1, :infinity))

      t1 = System.monotonic_time(:microsecond)
      {:ok, _} = EventStore.stats(ns)
      {t2, c1} = {System.monotonic_time(:microsecond), cpu_us()}
      EventStore.stop(ns)
      {round(n / ((t1 - t0) / 1.0e6)), round(n / ((t2 - t0) / 1.0e6)), (c1 - c0) / n}
    end

    for kind <- [:clock, :ranges], r <- 1..2 do
      {hot, _, hot_cpu} = run.([], kind)
      row([kind, r, "hot only", hot, "-", 1.0, 1.0, Float.round(hot_cpu, 2)])

      for mode <- [:none, :zstd] do
        dir = tmp("sustained")
        {acked, applied, cpu} = run.(warm(dir, mode), kind)
        File.rm_rf!(dir)
        ratio = &Float.round(&1 / hot, 2)

        row([
          kind,
          r,
          "warm #{mode}",
          acked,
          applied,
          ratio.(acked),
          ratio.(applied),
          Float.round(cpu, 2)
        ])
      end
    end
  end

  # An event of the long ingest (see `sustained_table/1`).
  defp event(i, :ranges), do: event(i)

  defp event(i, :clock) do
    %{
      event(i)
      | event_id: ElixirScope.Foundation.Utils.generate_id(),
        timestamp: System.monotonic_time(:millisecond)
    }
  end

  def ingest_table do
    IO.puts("\n## Ingest: #{@writers} writers x #{@per_writer} small events (events/s)\n")
    IO.puts("(vs hot: at the return of the last store; applied: once the tier has")
    IO.puts("written everything to its engine, which stats/1 waits for)\n")

    row([
      "store",
      "mode",
      "store/1",
      "batch of 100",
      "vs hot store/1",
      "vs hot batch",
      "applied store/1",
      "applied batch"
    ])

    # Three rounds, hot and warm interleaved; each cell keeps its best
    # round (the 2 cores are shared: a single round is mostly noise).
    modes = [:none, :gzip, :zstd]

    best =
      Enum.reduce(1..@rounds, %{}, fn _, best ->
        hot = start([])
        hot1 = ingest(hot, 1)
        EventStore.stop(hot)
        hot = start([])
        hotb = ingest(hot, 100)
        EventStore.stop(hot)

        cells =
          for mode <- modes, batch <- [1, 100], into: %{hot: {hot1, hotb}} do
            dir = tmp("ingest-#{mode}")
            ns = start(warm(dir, mode))
            rates = ingest(ns, batch)
            EventStore.stop(ns)
            File.rm_rf!(dir)
            {{mode, batch}, rates}
          end

        Map.merge(best, cells, fn
          :hot, {{a1, _}, {ab, _}}, {{b1, _}, {bb, _}} ->
            {{max(a1, b1), 0}, {max(ab, bb), 0}}

          _, {a, b}, {c, d} ->
            {max(a, c), max(b, d)}
        end)
      end)

    {{hot1, _}, {hotb, _}} = best.hot
    row(["hot only", "-", hot1, hotb, "1.00", "1.00", "1.00", "1.00"])

    for mode <- modes do
      {w1, a1} = best[{mode, 1}]
      {wb, ab} = best[{mode, 100}]

      row([
        "warm",
        mode,
        w1,
        wb,
        Float.round(w1 / hot1, 2),
        Float.round(wb / hotb, 2),
        Float.round(a1 / hot1, 2),
        Float.round(ab / hotb, 2)
      ])
    end
  end

  # The first read by type after a start: it waits for the type and
  # correlation indexes, which are rebuilt in memory after the start.
  def type_query(ns),
    do: time(fn -> EventStore.query(%{event_type: :type_3, limit: 10}, ns) end)

  def fill(ns, n) do
    1..n
    |> Stream.chunk_every(1000)
    |> Enum.each(fn ids -> {:ok, _} = EventStore.store_batch(Enum.map(ids, &event/1), ns) end)
  end

  def recovery_table(sizes) do
    IO.puts("\n## Reopen: start of a store over a warm directory (ms), zstd\n")
    row(["events", "fill s", "start ms", "first query ms", "type query ms", "MB on disk"])

    for n <- sizes do
      dir = tmp("recovery-#{n}")
      ns = start(warm(dir, :zstd))
      {fill_us, _} = time(fn -> fill(ns, n) end)
      EventStore.stop(ns)
      {start_us, ns} = time(fn -> start(warm(dir, :zstd)) end)

      {q_us, {:ok, [_ | _]}} =
        time(fn -> EventStore.query(%{order_by: :timestamp_desc, limit: 10}, ns) end)

      {t_us, {:ok, [_ | _]}} = type_query(ns)
      {:ok, %{warm_events: ^n}} = EventStore.stats(ns)
      EventStore.stop(ns)

      row([
        n,
        Float.round(fill_us / 1.0e6, 1),
        div(start_us, 1000),
        Float.round(q_us / 1000, 2),
        Float.round(t_us / 1000, 2),
        Float.round(du(dir) / 1_048_576, 1)
      ])

      File.rm_rf!(dir)
    end
  end

  def median(fun, n) do
    for(_ <- 1..n, do: elem(time(fun), 0)) |> Enum.sort() |> Enum.at(div(n, 2))
  end

  def read_table do
    IO.puts("\n## Read latency, median us (100k events; hot tier holds the newest 1000)\n")
    row(["read", "hot only", "warm: hot hit", "warm: disk"])
    n = 100_000
    hot = start([])
    fill(hot, n)
    dir = tmp("reads")
    ns = start(warm(dir, :zstd) ++ [max_events: 1000])
    fill(ns, n)

    cases = [
      {"get", fn s -> EventStore.get(n - 5, s) end, fn s -> EventStore.get(5_000, s) end},
      {"query limit 10", fn s -> EventStore.query(%{order_by: :timestamp_desc, limit: 10}, s) end,
       fn s -> EventStore.query(%{order_by: :timestamp, limit: 10}, s) end},
      {"query type 10",
       fn s ->
         EventStore.query(%{event_type: :type_3, order_by: :timestamp_desc, limit: 10}, s)
       end,
       fn s ->
         EventStore.query(
           %{event_type: :type_3, time_range: {500, 2000}, order_by: :timestamp, limit: 10},
           s
         )
       end},
      {"correlation (100)", fn s -> EventStore.get_by_correlation("corr-7", s) end,
       fn s -> EventStore.get_by_correlation("corr-7", s) end}
    ]

    for {name, recent, old} <- cases do
      row([
        name,
        median(fn -> recent.(hot) end, 200),
        median(fn -> recent.(ns) end, 200),
        median(fn -> old.(ns) end, 200)
      ])
    end

    EventStore.stop(hot)
    EventStore.stop(ns)
    File.rm_rf!(dir)
  end

  # Record bytes (record + index keys, what max_size_mb bounds) per event,
  # from the tier's own counters.
  def record_bytes(ns) do
    warm = ElixirScope.Foundation.Services.EventStore.Support.entry(ns).warm
    Map.new(ElixirScope.Foundation.Native.warm_stats(warm)).warm_bytes
  end

  def compression_table do
    IO.puts("\n## Compression: 50k events, bytes per event\n")
    raw = :erlang.term_to_binary(event(12_345)) |> byte_size()
    row(["mode", "ETF body", "record+index", "vs :none", "on disk", "batch ingest/s"])

    Enum.reduce([:none, :gzip, :zstd], nil, fn mode, base ->
      dir = tmp("ratio-#{mode}")
      ns = start(warm(dir, mode))
      {us, _} = time(fn -> fill(ns, 50_000) end)
      record = div(record_bytes(ns), 50_000)
      EventStore.stop(ns)
      disk = du(dir)
      base = base || record

      row([
        mode,
        raw,
        record,
        Float.round(record / base, 2),
        div(disk, 50_000),
        round(50_000 / (us / 1.0e6))
      ])

      File.rm_rf!(dir)
      base
    end)
  end

  def bound_table do
    IO.puts("\n## Disk bound: 300k events into max_size_mb: 16, :none\n")
    row(["max MB", "events kept", "evicted", "MB on disk"])
    dir = tmp("bound")
    ns = start(warm(dir, :none, 16))
    fill(ns, 300_000)
    {:ok, stats} = EventStore.stats(ns)
    EventStore.stop(ns)
    row([16, stats.warm_events, stats.warm_evicted, Float.round(du(dir) / 1_048_576, 1)])
    File.rm_rf!(dir)
  end

  # Crash recovery, two runs of this script: `ONLY=crash_fill` fills a
  # directory and halts the VM without stopping the store (its memtables
  # are then only in the journal, as after kill -9); `ONLY=crash_open`
  # times the next start over it.
  def crash_dir, do: System.get_env("CRASH_DIR", Path.join(System.tmp_dir!(), "warm-bench-crash"))

  def crash_fill(n) do
    File.rm_rf!(crash_dir())
    ns = start(warm(crash_dir(), :zstd))
    {us, _} = time(fn -> fill(ns, n) end)
    IO.puts("filled #{n} in #{Float.round(us / 1.0e6, 1)} s; halting without a stop")
    System.halt(0)
  end

  def crash_open do
    IO.puts("\n## Reopen after a crash (journal replay), zstd\n")
    row(["MB on disk", "start ms", "events", "first query ms", "type query ms"])
    mb = Float.round(du(crash_dir()) / 1_048_576, 1)
    {start_us, ns} = time(fn -> start(warm(crash_dir(), :zstd)) end)

    {q_us, {:ok, [_ | _]}} =
      time(fn -> EventStore.query(%{order_by: :timestamp_desc, limit: 10}, ns) end)

    {t_us, {:ok, [_ | _]}} = type_query(ns)
    {:ok, %{warm_events: n}} = EventStore.stats(ns)
    row([mb, div(start_us, 1000), n, Float.round(q_us / 1000, 2), Float.round(t_us / 1000, 2)])
    EventStore.stop(ns)
    File.rm_rf!(crash_dir())
  end
end

Logger.configure(level: :error)

sizes =
  (System.get_env("RECOVERY") || "100000,1000000")
  |> String.split(",")
  |> Enum.map(&String.to_integer/1)

if System.get_env("ONLY") in [nil, "ingest"], do: Bench.WarmStorage.ingest_table()
if System.get_env("ONLY") in [nil, "read"], do: Bench.WarmStorage.read_table()
if System.get_env("ONLY") in [nil, "ratio"], do: Bench.WarmStorage.compression_table()
if System.get_env("ONLY") in [nil, "bound"], do: Bench.WarmStorage.bound_table()
if System.get_env("ONLY") in [nil, "recovery"], do: Bench.WarmStorage.recovery_table(sizes)
if System.get_env("ONLY") == "crash_fill", do: Bench.WarmStorage.crash_fill(List.last(sizes))
if System.get_env("ONLY") == "crash_open", do: Bench.WarmStorage.crash_open()

if System.get_env("ONLY") == "sustained",
  do: Bench.WarmStorage.sustained_table(String.to_integer(System.get_env("SUSTAINED", "1600000")))
