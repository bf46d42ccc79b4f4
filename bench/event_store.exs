# Event store benchmark: the Rust store (through Services.EventStore, i.e.
# validation + NIF from the caller) vs the model of the original design
# (bench/support/original.exs: registry lookup, GenServer over a map,
# validation in the server, telemetry cast), and raw ETS used from the
# caller, at growing store sizes.
#
#   ELIXIR_SCOPE_FOUNDATION_NIF_FEATURES=test-support MIX_ENV=prod \
#     mix run bench/event_store.exs                       # 10k, 100k, 1M
#   SIZES=10000,100000 ... (same variables)               # pick sizes
#
# The memory row reads the native heap counter, which only a NIF built
# with the `test-support` cargo feature has (MIX_ENV=test builds have it);
# other builds print "-" there.
#
# Fixed operation counts: 10 000 single stores, 8 x 2 000 concurrent stores,
# 100 batches of 100, 8 x 5 000 concurrent gets; get_by_correlation and query
# run as many times as fit in 0.4 s (at least 3); prune runs once. Then the
# shard table and the per-operation boundary cost (NIF put/get vs ETS).
Code.require_file("support/harness.exs", __DIR__)
Code.require_file("support/reference_event_store.exs", __DIR__)
Code.require_file("../test/support/validation_reference.ex", __DIR__)
Code.require_file("support/original.exs", __DIR__)

defmodule Bench.EventStoreBench do
  alias Bench.{Harness, Original, RawEts}
  alias ElixirScope.Foundation.Native
  alias ElixirScope.Foundation.Services.EventStore
  alias ElixirScope.Foundation.Types.Event

  @groups 1000
  @types List.to_tuple(for i <- 0..9, do: :"type_#{i}")
  @budget 0.4

  def event(i, wall) do
    %Event{
      event_id: i,
      event_type: elem(@types, rem(i, 10)),
      timestamp: i,
      wall_time: wall,
      node: node(),
      pid: self(),
      correlation_id: "corr-#{rem(i, @groups)}",
      parent_id: nil,
      data: %{i: i, tag: "bench"}
    }
  end

  # impl => {start, stop, memory, store, store_batch, get, corr, query, prune}
  # `shards`: a shard count, or `:default` for the library's own.
  def impl(:rust, shards) do
    shard_opt = if shards == :default, do: [], else: [shards: shards]

    %{
      start: fn ->
        ns = {:test, make_ref()}

        {:ok, _} =
          EventStore.start_link([namespace: ns, max_events: 0, max_age_seconds: 0] ++ shard_opt)

        [namespace: ns]
      end,
      stop: &EventStore.stop/1,
      memory: fn _ -> native_heap_bytes() end,
      store: &EventStore.store(&2, &1),
      batch: &EventStore.store_batch(&2, &1),
      get: &EventStore.get(&2, &1),
      corr: &EventStore.get_by_correlation(&2, &1),
      query: &EventStore.query(&2, &1),
      prune: &EventStore.prune_before(&2, &1)
    }
  end

  def impl(:reference, _) do
    %{
      start: &Original.start/0,
      stop: &Original.stop/1,
      memory: fn ctx ->
        {:ok, pid} = Original.lookup(ctx, :event_store)
        :erlang.garbage_collect(pid)
        elem(Process.info(pid, :memory), 1)
      end,
      store: &Original.store/2,
      batch: &Original.store_batch/2,
      get: &Original.get/2,
      corr: &Original.get_by_correlation/2,
      query: &Original.query/2,
      prune: &Original.prune_before/2
    }
  end

  def impl(:ets, _) do
    %{
      start: &RawEts.new/0,
      stop: &:ets.delete/1,
      memory: &RawEts.bytes/1,
      store: &RawEts.store/2,
      batch: &RawEts.store_batch/2,
      get: &RawEts.get/2,
      corr: &RawEts.get_by_correlation/2,
      query: &RawEts.query/2,
      prune: &RawEts.prune_before/2
    }
  end

  # The native heap counter exists only in NIFs built with `test-support`
  # (nil otherwise: the memory row then shows "-").
  defp native_heap_bytes do
    Native.native_heap_bytes()
  rescue
    ErlangError -> nil
  end

  # Each side runs in a process of its own, which drops the fill's events
  # and collects its heap before the timed loops: a collection of a heap
  # holding a million events inside a timed loop would cost tens of
  # milliseconds to whichever side triggered it.
  def measure(kind, n, wall) do
    fn -> measure_here(kind, n, wall) end
    |> Task.async()
    |> Task.await(:infinity)
  end

  defp measure_here(kind, n, wall) do
    im = impl(kind, :default)
    inst = im.start.()
    before = im.memory.(inst)

    1..n
    |> Stream.chunk_every(1000)
    |> Enum.each(&({:ok, _} = im.batch.(inst, Enum.map(&1, fn i -> event(i, wall) end))))

    bytes = if before, do: (im.memory.(inst) - before) / n, else: "-"
    single = Enum.map(1..10_000, &event(n + &1, wall))
    :erlang.garbage_collect()
    {t_single, _} = :timer.tc(fn -> Enum.each(single, &({:ok, _} = im.store.(inst, &1))) end)

    conc =
      Harness.concurrent_ops_per_sec(8, 2_000, fn w, i ->
        {:ok, _} = im.store.(inst, event(n + 20_000 + w * 10_000 + i, wall))
      end)

    batches = for b <- 0..99, do: Enum.map(1..100, &event(n + 200_000 + b * 100 + &1, wall))
    :erlang.garbage_collect()
    {t_batch, _} = :timer.tc(fn -> Enum.each(batches, &({:ok, _} = im.batch.(inst, &1))) end)

    get =
      Harness.concurrent_ops_per_sec(8, 5_000, fn _, _ ->
        {:ok, _} = im.get.(inst, :rand.uniform(n))
      end)

    corr =
      adaptive(fn -> {:ok, [_ | _]} = im.corr.(inst, "corr-#{:rand.uniform(@groups) - 1}") end)

    query = adaptive(fn -> {:ok, _} = im.query.(inst, random_query(n)) end)
    :erlang.garbage_collect()
    {t_prune, {:ok, pruned}} = :timer.tc(fn -> im.prune.(inst, div(n, 2)) end)
    true = pruned >= div(n, 2) - 1
    im.stop.(inst)

    %{
      single: 1.0e6 * 10_000 / t_single,
      conc: conc,
      batch: 1.0e6 * 100 / t_batch,
      get: get,
      corr: corr,
      query: query,
      prune: 1.0e6 / max(t_prune, 1),
      bytes: bytes
    }
  end

  defp random_query(n) do
    start = :rand.uniform(max(n - 10_000, 1))
    type = elem(@types, :rand.uniform(10) - 1)
    %{event_type: type, time_range: {start, start + 10_000}, limit: 100, order_by: :timestamp}
  end

  defp adaptive(fun) do
    fun.()
    t0 = System.monotonic_time(:microsecond)
    count = loop(fun, t0, 0)
    count * 1.0e6 / max(System.monotonic_time(:microsecond) - t0, 1)
  end

  defp loop(fun, t0, count) do
    if count >= 3 and System.monotonic_time(:microsecond) - t0 > @budget * 1.0e6 do
      count
    else
      fun.()
      loop(fun, t0, count + 1)
    end
  end

  @rows [
    single: "store, 1 process (ops/s)",
    conc: "store, 8 processes (ops/s)",
    batch: "store_batch of 100 (batches/s)",
    get: "get by id, 8 processes (ops/s)",
    corr: "get_by_correlation, 1000 groups (ops/s)",
    query: "query type+range+limit 100 (ops/s)",
    prune: "prune half the store (ops/s)",
    bytes: "bytes per event"
  ]

  def run_size(n) do
    wall = DateTime.utc_now()

    results = for kind <- [:rust, :reference, :ets], into: %{}, do: {kind, measure(kind, n, wall)}

    rows =
      for {key, label} <- @rows do
        r = results.rust[key]
        ref = results.reference[key]
        ets = results.ets[key]
        [label, r, ref, ets, ratio(r, ref), ratio(r, ets)]
      end

    Harness.table(
      "Event store, #{Harness.format(n)} events (2 cores)",
      ["operation", "rust", "original design", "raw ETS", "rust/original", "rust/ETS"],
      rows
    )
  end

  defp ratio(a, b) when not is_number(a) or not is_number(b), do: "-"
  defp ratio(a, b), do: "#{:erlang.float_to_binary(a / max(b, 1.0e-9), decimals: 2)}x"

  def shards(n) do
    wall = DateTime.utc_now()
    events = Enum.map(1..n, &event(&1, wall))

    rows =
      for shards <- [1, 4, 16] do
        ns = {:test, make_ref()}

        {:ok, _} =
          EventStore.start_link(namespace: ns, max_events: 0, max_age_seconds: 0, shards: shards)

        opts = [namespace: ns]

        events
        |> Enum.chunk_every(1000)
        |> Enum.each(&({:ok, _} = EventStore.store_batch(&1, opts)))

        %{handle: h} = EventStore.Support.lookup(ns)

        put =
          Harness.concurrent_ops_per_sec(8, 5_000, fn w, i ->
            {:ok, _} = Native.store_put(h, event(n + w * 10_000 + i, wall))
          end)

        get =
          Harness.concurrent_ops_per_sec(8, 10_000, fn _, _ ->
            %Event{} = Native.store_get(h, :rand.uniform(n))
          end)

        query = adaptive(fn -> {:ok, _} = EventStore.query(random_query(n), opts) end)
        EventStore.stop(opts)
        ["#{shards}", put, get, query]
      end

    Harness.table(
      "Shards (#{Harness.format(n)} events, 8 processes, NIF calls only)",
      ["shards", "put ops/s", "get ops/s", "query ops/s"],
      rows
    )
  end

  @doc """
  Per-operation cost of the boundary, one process, 100k events stored:
  the NIF put/get (encode/decode of the store's term format plus the core
  operation) next to an ETS insert/lookup of the same event and to
  `term_to_binary`/`binary_to_term` of it (external term format, the
  durable form).
  """
  def codec(n) do
    wall = DateTime.utc_now()
    events = Enum.map(1..n, &event(&1, wall))
    {:ok, h} = Native.store_new(4, 0, 0, 16)
    tab = :ets.new(:codec, [:set, :public])
    ids = Enum.map(1..n, fn _ -> :rand.uniform(n) end)
    etf = :erlang.term_to_binary(hd(events))

    rows = [
      ["Native.store_put (encode + insert)", per_op(events, &Native.store_put(h, &1))],
      [":ets.insert", per_op(events, &:ets.insert(tab, {&1.event_id, &1}))],
      ["Native.store_get (lookup + decode)", per_op(ids, &Native.store_get(h, &1))],
      [":ets.lookup", per_op(ids, &:ets.lookup(tab, &1))],
      [":erlang.term_to_binary(event)", per_op(events, &:erlang.term_to_binary/1)],
      [":erlang.binary_to_term(etf)", per_op(ids, fn _ -> :erlang.binary_to_term(etf) end)]
    ]

    :ets.delete(tab)

    Harness.table(
      "Boundary cost per operation (#{Harness.format(n)} events, 1 process)",
      ["operation", "us/op"],
      rows
    )
  end

  defp per_op(items, fun) do
    {t, _} = :timer.tc(fn -> Enum.each(items, fun) end)
    Float.round(t / length(items), 3)
  end
end

sizes =
  case System.get_env("SIZES") do
    nil -> [10_000, 100_000, 1_000_000]
    "" -> []
    s -> s |> String.split(",") |> Enum.map(&String.to_integer/1)
  end

{_, seconds} =
  Bench.Harness.time(fn ->
    Enum.each(sizes, &Bench.EventStoreBench.run_size/1)
    Bench.EventStoreBench.shards(100_000)
    Bench.EventStoreBench.codec(100_000)
  end)

IO.puts("\nTotal: #{Float.round(seconds, 1)} s")
