# Scheduler safety: does any NIF keep a normal scheduler busy?
#
#     mix run bench/scheduler_latency.exs            (about 2 minutes)
#     SECONDS_PER_WORKLOAD=1 mix run bench/scheduler_latency.exs   (quick look)
#     ONLY="query,store 1 MB" mix run bench/scheduler_latency.exs   (some rows)
#
# Second table: the same workloads run by one traced process, whose
# stretches on a normal scheduler are measured directly (TRACE_SECONDS per
# workload, default 2; see bench/support/stretches.exs).
#
# A probe process sleeps 1 ms in a loop (`receive after 1`) and records how
# late it wakes up (lateness = elapsed - 1 ms, in microseconds). Meanwhile
# `System.schedulers_online()` loader processes run one workload in a loop,
# so every normal scheduler has work besides the probe. A NIF that stays on a
# normal scheduler for N ms shows up as probe lateness of about N ms; dirty
# NIFs and yielding BIFs do not. Only probe samples that overlap a timed call
# of the workload are counted (set-up such as refilling the store is not).
#
# Target (2 cores): max lateness under 10 ms for every workload.

Code.require_file("support/harness.exs", __DIR__)
Code.require_file("support/reference_event_store.exs", __DIR__)
Code.require_file("support/stretches.exs", __DIR__)

defmodule Bench.SchedulerLatency do
  alias ElixirScope.Foundation.{Config, Events}
  alias ElixirScope.Foundation.Events.GracefulDegradation, as: EventsGD
  alias ElixirScope.Foundation.Services.{EventStore, TelemetryService}
  alias ElixirScope.Foundation.Types.Event
  alias ElixirScope.Foundation.Validation.ConfigValidator

  @seconds String.to_integer(System.get_env("SECONDS_PER_WORKLOAD", "6"))
  @trace_ms 1000 * String.to_integer(System.get_env("TRACE_SECONDS", "2"))
  @long_ms 3
  @max_ts 0x7FFF_FFFF_FFFF_FFFF

  def run do
    :rand.seed(:exsss, {1, 2, 3})
    loaders = System.schedulers_online()

    IO.puts(
      "schedulers: #{loaders} normal, #{:erlang.system_info(:dirty_cpu_schedulers_online)} dirty CPU; " <>
        "#{loaders} loader processes; #{@seconds} s per workload"
    )

    ns = {:test, make_ref()}
    {:ok, _} = EventStore.start_link(namespace: ns, max_events: 0, max_age_seconds: 0)
    {:ok, _} = TelemetryService.start_link(namespace: ns, enable_vm_metrics: false)
    opts = [namespace: ns]

    rows =
      [
        {"baseline (no load)", 0, fn -> Process.sleep(50) end},
        {"pure Elixir CPU loop (reference)", loaders, fn -> spin(200_000) end}
      ] ++
        store_workloads(opts, loaders) ++
        reference_workloads(loaders) ++ other_workloads(opts, loaders)

    rows = Enum.filter(rows, fn {name, _, _} -> selected?(name) end)
    # Each workload is measured twice in a row (the store's state is what
    # the rows before it left): probe lateness under load, then the traced
    # stretches of one process.
    {results, stretches} =
      rows
      |> Enum.map(fn {name, n, work} -> {measure(name, n, work), stretch_row(name, n, work)} end)
      |> Enum.unzip()

    Bench.Harness.table(
      "probe wake-up lateness (µs) while the workload runs",
      [
        "workload",
        "calls",
        "samples",
        "p50",
        "p99",
        "max",
        "long schedules/GC > 3 ms in loaders"
      ],
      results
    )

    worst = results |> Enum.map(&Enum.at(&1, 5)) |> Enum.max()
    IO.puts("worst max lateness: #{Float.round(worst / 1000, 2)} ms (target < 10 ms)")
    stretches_table(stretches)
    hot_paths(opts)
  end

  # The same workloads in one traced process: its stretches on a normal
  # scheduler (see bench/support/stretches.exs).
  defp stretch_row(_name, 0, _work), do: nil
  defp stretch_row(name, _n, work), do: [name | Bench.Stretches.measure(work, @trace_ms)]

  defp stretches_table(rows) do
    table = Enum.reject(rows, &is_nil/1)

    Bench.Harness.table(
      "normal-scheduler stretches (µs): 1 process, traced, #{div(@trace_ms, 1000)} s per workload",
      ["workload", "calls", "stretches", "p50", "p99", "max", "longest (began -> ended)"],
      table
    )

    worst = table |> Enum.map(&Enum.at(&1, 5)) |> Enum.max(fn -> 0 end)
    IO.puts("longest normal-scheduler stretch: #{Float.round(worst / 1000, 2)} ms (rule: ~1 ms)")
  end

  # What the size checks cost the small calls that stay on normal
  # schedulers (ops/s, 1 process, best of 3).
  defp hot_paths(opts) do
    {:ok, _} = EventStore.prune_before(@max_ts, opts)
    small = fn id -> hd(events(id, 1, 1)) end
    {:ok, _} = EventStore.store(small.(1), opts)
    batch = events(50_000_000, 64, 4)
    counter = :counters.new(1, [])

    next = fn ->
      :counters.add(counter, 1, 1)
      :counters.get(counter, 1) + 100_000_000
    end

    rows = [
      {"EventStore.store/2 small event", 50_000,
       fn -> {:ok, _} = EventStore.store(small.(next.()), opts) end},
      {"EventStore.get/2 small event", 100_000, fn -> {:ok, _} = EventStore.get(1, opts) end},
      {"EventStore.store_batch/2 64 small events", 2_000,
       fn -> {:ok, _} = EventStore.store_batch(batch, opts) end},
      {"EventStore.query/2 limit 10", 20_000,
       fn -> {:ok, _} = EventStore.query(%{event_type: :bench_type_0, limit: 10}, opts) end},
      {"TelemetryService.emit_counter/4 known name", 300_000,
       fn -> :ok = TelemetryService.emit_counter([:bench, :hot], 1, %{a: 1}, opts) end},
      {"TelemetryService.execute/4 known name", 200_000,
       fn -> TelemetryService.execute([:bench, :exec], %{duration: 5}, %{a: 1}, opts) end}
    ]

    table =
      for {name, n, fun} <- rows do
        best = Enum.max(for _ <- 1..3, do: Bench.Harness.ops_per_sec(fun, iterations: n))
        [name, round(best)]
      end

    Bench.Harness.table("hot paths (ops/s, 1 process, best of 3)", ["call", "ops/s"], table)
  end

  defp store_workloads(opts, loaders) do
    big = shared(big_event(1))
    {:ok, _} = EventStore.store(big.(), opts)
    fill(opts, 100_000, 10_000)

    bigs =
      shared(
        for id <- 11..18,
            do: %{big.() | event_id: 2_000_000_000 + id, correlation_id: "bench-big"}
      )

    [
      {"EventStore.query -> 100k events", loaders,
       fn -> {:ok, [_ | _]} = EventStore.query(%{limit: 100_000}, opts) end},
      {"EventStore.store_batch 10k events", loaders, store_batch_fun(opts)},
      {"EventStore.query limit 1, offset 90k (of 100k)", loaders,
       fn -> {:ok, [_]} = EventStore.query(%{limit: 1, offset: 90_000}, opts) end},
      {"EventStore.prune_before (500k events)", 1, prune_fun(opts)},
      {"EventStore.store 1 MB-data event", loaders,
       fn -> {:ok, 1} = EventStore.store(big.(), opts) end},
      {"dirty NIF only: Native.store_put_dirty 1 MB-data event (reference)", loaders,
       dirty_only_fun(big, opts)},
      {"EventStore.get 1 MB-data event", loaders, fn -> {:ok, _} = EventStore.get(1, opts) end},
      {"EventStore.store_async 1 MB-data event", loaders,
       fn -> EventStore.store_async(%{big.() | event_id: 2}, opts) end},
      {"EventStore.store_batch 8 x 1 MB-data events", loaders,
       fn -> {:ok, _} = EventStore.store_batch(bigs.(), opts) end},
      {"EventStore.query limit 8 -> 8 x 1 MB-data events", loaders,
       fn -> {:ok, [_ | _]} = EventStore.query(%{event_type: :bench_big, limit: 8}, opts) end},
      {"EventStore.get_by_correlation -> 8 x 1 MB-data events", loaders,
       fn -> {:ok, [_ | _]} = EventStore.get_by_correlation("bench-big", opts) end}
    ]
  end

  # The same 100k-event result from the original's design (a GenServer
  # over a map) and from raw ETS: what the VM itself does with a result of
  # that size (copy, garbage collection), whoever builds it.
  defp reference_workloads(loaders) do
    if selected?("100k events (reference)") do
      evs = Enum.flat_map(0..9, &events(&1 * 10_000 + 10, 10_000, 100))
      {:ok, ref} = Bench.ReferenceEventStore.start()
      {:ok, _} = Bench.ReferenceEventStore.store_batch(ref, evs)
      ets = Bench.RawEts.new()
      {:ok, _} = Bench.RawEts.store_batch(ets, evs)

      [
        {"original design (GenServer + map): query -> 100k events (reference)", loaders,
         fn -> {:ok, [_ | _]} = Bench.ReferenceEventStore.query(ref, %{limit: 100_000}) end},
        {"raw ETS: :ets.tab2list -> 100k events (reference)", loaders,
         fn -> [_ | _] = :ets.tab2list(ets) end}
      ]
    else
      []
    end
  end

  defp other_workloads(opts, loaders) do
    big = shared(big_event(3))
    {:ok, bin} = Events.serialize(big.())
    bin = shared(bin)
    {:ok, config} = Config.get()
    fill_metrics(opts, 9_000)
    meta = shared(%{payload: nested_data(500_000)})
    counter = :counters.new(1, [])
    fresh = shared(:big_meta |> names(500) |> List.to_tuple())

    [
      {"Events.serialize 1 MB-data event", loaders,
       fn -> {:ok, _} = Events.serialize(big.()) end},
      {"Events.deserialize 1 MB-data event", loaders,
       fn -> {:ok, _} = Events.deserialize(bin.()) end},
      {"ConfigValidator.validate (full config)", loaders,
       fn -> :ok = ConfigValidator.validate(config) end},
      {"TelemetryService.get_metrics (9k metrics)", loaders,
       fn -> {:ok, _} = TelemetryService.get_metrics(opts) end},
      {"TelemetryService.emit_counter, 500 KB metadata, new names", loaders,
       fn -> emit_new(counter, fresh.(), meta.(), opts) end},
      {"JSON fallback (serialize_safe) 1 MB-data event", loaders,
       fn -> EventsGD.serialize_safe(Map.from_struct(big.())) end}
    ]
  end

  # ONLY="query,get " runs the workloads whose names contain one of the
  # comma-separated parts (the two baseline rows always run).
  defp selected?(name) do
    case System.get_env("ONLY", "") do
      "" -> true
      only -> String.contains?(name, ["(no load)", "CPU loop" | String.split(only, ",")])
    end
  end

  ## measuring

  defp measure(name, loaders, work) do
    parent = self()
    stop = :atomics.new(1, [])
    drain()
    :erlang.system_monitor(self(), long_schedule: @long_ms, long_gc: @long_ms)
    probe = spawn_link(fn -> send(parent, {:probe, probe_loop([])}) end)
    pids = for _ <- 1..loaders//1, do: spawn_link(fn -> loader(parent, stop, work, [], 0) end)
    Process.sleep(@seconds * 1000)
    :atomics.put(stop, 1, 1)
    # The probe runs until every loader has finished its last call (but not
    # while they send their interval lists: copying a list of millions of
    # intervals is the bench's own long schedule).
    Enum.each(pids, fn pid -> receive(do: ({:finished, ^pid} -> :ok)) end)
    send(probe, :stop)

    {lists, calls} =
      pids
      |> Enum.map(fn pid -> receive(do: ({:intervals, ^pid, l, n} -> {l, n})) end)
      |> Enum.unzip()

    intervals = Enum.concat(lists)
    samples = receive(do: ({:probe, s} -> s))
    :erlang.system_monitor(:undefined)
    row(name, {loaders, Enum.sum(calls)}, intervals, samples) ++ [culprits(drain(), pids)]
  end

  # What held a scheduler (or garbage collected) longer than @long_ms in a
  # loader process, from `:erlang.system_monitor/2`: "where ×count max ms".
  defp culprits(events, pids) do
    events
    |> Enum.filter(fn {pid, _kind, _info} -> pid in pids end)
    |> Enum.group_by(&culprit_key/1, fn {_, _, info} -> info[:timeout] end)
    |> Enum.sort_by(fn {_k, ts} -> -Enum.max(ts) end)
    |> Enum.take(2)
    |> Enum.map_join("; ", fn {k, ts} -> "#{k} x#{length(ts)} max #{Enum.max(ts)} ms" end)
  end

  defp culprit_key({_pid, :long_gc, _info}), do: "GC"
  defp culprit_key({_pid, :long_schedule, info}), do: "#{mfa(info[:in])} -> #{mfa(info[:out])}"

  defp mfa({m, f, a}), do: "#{inspect(m)}.#{f}/#{a}"
  defp mfa(other), do: inspect(other)

  defp drain(acc \\ []) do
    receive do
      {:monitor, pid, kind, info} -> drain([{pid, kind, info} | acc])
    after
      0 -> acc
    end
  end

  defp row(name, {0, _}, _intervals, samples),
    do: [name, 0 | stats(Enum.map(samples, &elem(&1, 2)))]

  defp row(name, {_loaders, calls}, intervals, samples) do
    counted = for {t0, t1, late} <- samples, overlaps?(intervals, t0, t1), do: late
    [name, calls | stats(counted)]
  end

  defp overlaps?(intervals, t0, t1),
    do: Enum.any?(intervals, fn {a, b} -> t0 <= b and t1 >= a end)

  defp stats([]), do: [0, 0, 0, 0]

  defp stats(lates) do
    sorted = Enum.sort(lates)
    n = length(sorted)
    pick = fn q -> Enum.at(sorted, min(n - 1, trunc(q * n))) end
    [n, pick.(0.5), pick.(0.99), List.last(sorted)]
  end

  defp probe_loop(acc) do
    t0 = System.monotonic_time(:microsecond)

    receive do
      :stop -> acc
    after
      1 ->
        t1 = System.monotonic_time(:microsecond)
        probe_loop([{t0, t1, max(t1 - t0 - 1000, 0)} | acc])
    end
  end

  defp loader(parent, stop, work, acc, calls) do
    if :atomics.get(stop, 1) == 1 do
      send(parent, {:finished, self()})
      send(parent, {:intervals, self(), acc, calls})
    else
      a = System.monotonic_time(:microsecond)

      interval =
        case work.() do
          {:timed, t0, t1} -> {t0, t1}
          _ -> {a, System.monotonic_time(:microsecond)}
        end

      loader(parent, stop, work, add_interval(interval, acc), calls + 1)
    end
  end

  # Back-to-back calls (gap under 100 µs) merge into one interval, so a loop
  # of µs calls keeps a short list.
  defp add_interval({a, b}, [{a0, b0} | rest]) when a - b0 < 100, do: [{a0, b} | rest]
  defp add_interval(interval, acc), do: [interval | acc]

  ## workloads

  # Workload inputs live in :persistent_term (literals): loaders read them
  # without copying, so their own heaps (and garbage collections) stay
  # small and the probe sees the library's work, not the bench's data.
  defp shared(value) do
    key = {__MODULE__, make_ref()}
    :persistent_term.put(key, value)
    fn -> :persistent_term.get(key) end
  end

  defp spin(0), do: :ok
  defp spin(n), do: spin(n - 1)

  # What CPU work on the dirty schedulers alone costs the probe: on 2 cores
  # the dirty scheduler threads compete with the normal ones for the CPU.
  defp dirty_only_fun(big, opts) do
    handle = EventStore.Support.entry(opts).handle
    fn -> {:ok, 1} = ElixirScope.Foundation.Native.store_put_dirty(handle, big.()) end
  end

  defp store_batch_fun(opts) do
    batches = shared(for w <- 0..3, do: events(w * 10_000 + 1_000_000, 10_000, 100))

    fn ->
      {:ok, _} = EventStore.store_batch(Enum.random(batches.()), opts)
    end
  end

  # Each call refills the store to 500k events (untimed) and then prunes all
  # of them; only the prune call is reported as the timed interval.
  defp prune_fun(opts) do
    fn ->
      {:ok, _} = EventStore.prune_before(0, opts)
      fill(opts, 500_000, 10_000)
      t = System.monotonic_time(:microsecond)
      {:ok, n} = EventStore.prune_before(10_000_000, opts)
      true = n >= 500_000
      {:timed, t, System.monotonic_time(:microsecond)}
    end
  end

  defp fill(opts, count, chunk) do
    for start <- 0..(count - 1)//chunk do
      {:ok, _} = EventStore.store_batch(events(start + 10, chunk, 100), opts)
    end
  end

  defp events(first_id, n, types) do
    for i <- first_id..(first_id + n - 1) do
      %Event{
        event_type: :"bench_type_#{rem(i, types)}",
        event_id: i,
        timestamp: i,
        wall_time: nil,
        node: node(),
        pid: self(),
        correlation_id: "c#{rem(i, 1000)}",
        data: %{i: i, tag: :bench}
      }
    end
  end

  # ~1 MB of small terms (the validator's limit is 1 000 000 external bytes).
  defp big_event(id) do
    {:ok, e} = Events.new_event(:bench_big, nested_data(950_000), event_id: id)
    e
  end

  defp nested_data(bytes) do
    items = for i <- 1..div(bytes, 26), do: {i, :item, [i * 7]}
    %{items: items}
  end

  # Metric names are lists of atoms: made once here (bench only).
  defp names(prefix, n), do: for(i <- 1..n, do: [:bench, prefix, :"#{prefix}_#{i}"])

  defp fill_metrics(opts, n) do
    for name <- names(:fill, n), do: TelemetryService.emit_counter(name, 1, %{name: name}, opts)
  end

  # Each call records a name never seen since the last reset, so the
  # metadata is encoded (it is kept from the first record of a name).
  defp emit_new(counter, names, meta, opts) do
    :counters.add(counter, 1, 1)
    i = :counters.get(counter, 1)
    if rem(i, tuple_size(names)) == 0, do: TelemetryService.reset_metrics(opts)
    :ok = TelemetryService.emit_counter(elem(names, rem(i, tuple_size(names))), 1, meta, opts)
  end
end

Bench.SchedulerLatency.run()
