# Drop-in comparison: every public operation of the foundation, called
# through the public API, against a model of the original layer doing the
# original's per-call work (bench/support/original.exs), in one run.
#
#   MIX_ENV=prod mix run bench/dropin.exs
#   SHORT=1 MIX_ENV=prod mix run bench/dropin.exs   # CI form: fewer ops, no 1M rows
#
# Workload: 50 000 stored events with 64-byte payloads (10 types, 1 000
# correlation ids, so 50 events per id), 8 processes where concurrent.
# Prints one table of ops/s and the ratio project / original (medians of
# ROUNDS rounds, 5 by default, 1 in the short form; each round runs both
# sides), then the growth of a limit-100 query with the store size.
Code.require_file("support/harness.exs", __DIR__)
Code.require_file("support/workload.exs", __DIR__)
Code.require_file("../test/support/validation_reference.ex", __DIR__)
Code.require_file("support/reference_event_store.exs", __DIR__)
Code.require_file("support/original.exs", __DIR__)

defmodule Bench.Dropin do
  alias Bench.{Harness, Original}
  alias ElixirScope.Foundation.{Config, Events, Telemetry}
  alias ElixirScope.Foundation.Services.EventStore

  @n 50_000
  @groups 1_000

  import Bench.Workload, only: [event: 1, scale: 1, short?: 0]

  # Both sides behind the same function table.
  def ours do
    %{
      reset: fn ->
        Application.stop(:elixir_scope_foundation)
        {:ok, _} = Application.ensure_all_started(:elixir_scope_foundation)
        nil
      end,
      stop: fn _ -> :ok end,
      store: fn _, e -> Events.store(e) end,
      batch: fn _, es -> Events.store_batch(es) end,
      get: fn _, id -> Events.get(id) end,
      corr: fn _, cid -> Events.get_by_correlation(cid) end,
      query: fn _, q -> Events.query(q) end,
      prune: fn _, ts -> Events.prune_before(ts) end,
      stats: fn _ -> Events.stats() end,
      emit: fn _, name -> Telemetry.emit_counter(name, %{}) end,
      metrics: fn _ -> Telemetry.get_metrics() end,
      config_get: fn _, path -> Config.get(path) end,
      config_update: fn _, path, v -> Config.update(path, v) end
    }
  end

  def original do
    %{
      reset: &Original.start/0,
      stop: &Original.stop/1,
      store: &Original.store/2,
      batch: &Original.store_batch/2,
      get: &Original.get/2,
      corr: &Original.get_by_correlation/2,
      query: &Original.query/2,
      prune: &Original.prune_before/2,
      stats: &Original.stats/1,
      emit: fn ctx, name -> Original.emit_counter(ctx, name, %{}) end,
      metrics: &Original.get_metrics/1,
      config_get: &Original.config_get/2,
      config_update: &Original.config_update/3
    }
  end

  def run_side(im) do
    ctx = im.reset.()

    for chunk <- Enum.chunk_every(1..@n, 1000),
        do: {:ok, _} = im.batch.(ctx, Enum.map(chunk, &event/1))

    base = @n + 1

    single = scale(10_000)
    evs = Enum.map(base..(base + single - 1), &event/1)
    # Each timed loop starts with this process's heap collected, so a
    # collection of the fill's garbage is not timed as part of the loop.
    :erlang.garbage_collect()
    {t, _} = :timer.tc(fn -> Enum.each(evs, &({:ok, _} = im.store.(ctx, &1))) end)
    store1 = single * 1.0e6 / t

    base = base + single
    per = scale(2_000)

    store8 =
      Harness.concurrent_ops_per_sec(8, per, fn w, i ->
        {:ok, _} = im.store.(ctx, event(base + w * per + i))
      end)

    base = base + 9 * per
    batches = for b <- 0..(scale(100) - 1), do: Enum.map(1..100, &event(base + b * 100 + &1))
    :erlang.garbage_collect()
    {t, _} = :timer.tc(fn -> Enum.each(batches, &({:ok, _} = im.batch.(ctx, &1))) end)
    batch = length(batches) * 100 * 1.0e6 / t

    get8 =
      Harness.concurrent_ops_per_sec(8, scale(5_000), fn _, _ ->
        {:ok, _} = im.get.(ctx, :rand.uniform(@n))
      end)

    corr =
      adaptive(fn -> {:ok, [_ | _]} = im.corr.(ctx, "corr-#{:rand.uniform(@groups) - 1}") end)

    query =
      adaptive(fn ->
        start = :rand.uniform(@n - div(@n, 10))
        type = Bench.Workload.type(:rand.uniform(10) - 1)
        q = %{event_type: type, time_range: {start, start + div(@n, 10)}, limit: 100}
        {:ok, [_ | _]} = im.query.(ctx, q)
      end)

    stats = adaptive(fn -> {:ok, %{}} = im.stats.(ctx) end)
    :erlang.garbage_collect()
    {t, {:ok, pruned}} = :timer.tc(fn -> im.prune.(ctx, div(@n, 2)) end)
    true = pruned >= div(@n, 2) - 1
    prune = 1.0e6 / max(t, 1)

    emit_caller =
      Harness.ops_per_sec(fn -> im.emit.(ctx, [:bench, :caller]) end, iterations: scale(50_000))

    emit8 = emit_until_counted(im, ctx, scale(10_000))

    path = [:ai, :planning, :sampling_rate]

    config_get8 =
      Harness.concurrent_ops_per_sec(8, scale(20_000), fn _, _ ->
        {:ok, _} = im.config_get.(ctx, path)
      end)

    update1 =
      Harness.ops_per_sec(fn -> :ok = im.config_update.(ctx, path, :rand.uniform()) end,
        iterations: scale(5_000),
        warmup: 100
      )

    update8 =
      Harness.concurrent_ops_per_sec(8, scale(1_000), fn _, _ ->
        :ok = im.config_update.(ctx, path, :rand.uniform())
      end)

    im.stop.(ctx)

    [
      {"store, 1 process", store1},
      {"store, 8 processes", store8},
      {"store_batch of 100 (events/s)", batch},
      {"get by id, 8 processes", get8},
      {"get_by_correlation (50 events)", corr},
      {"query: type + 10% window, limit 100", query},
      {"prune_before (half the store, calls/s)", prune},
      {"stats", stats},
      {"emit_counter, 8 processes, until counted", emit8},
      {"emit_counter, caller side", emit_caller},
      {"Config.get/1, 8 processes", config_get8},
      {"Config.update/2, 1 process", update1},
      {"Config.update/2, 8 processes", update8}
    ]
  end

  # 8 processes emit `per` counts each on a fresh name; timed until
  # get_metrics shows every count.
  defp emit_until_counted(im, ctx, per) do
    name = [:bench, :"counted_#{System.unique_integer([:positive])}"]
    t0 = System.monotonic_time(:microsecond)
    Harness.concurrent_ops_per_sec(8, per, fn _, _ -> im.emit.(ctx, name) end)
    wait_count(im, ctx, name, 8 * per)
    8 * per * 1.0e6 / max(System.monotonic_time(:microsecond) - t0, 1)
  end

  defp wait_count(im, ctx, name, want) do
    {:ok, metrics} = im.metrics.(ctx)

    case get_in(metrics, name) do
      %{count: ^want} -> :ok
      _ -> wait_count(im, ctx, name, want)
    end
  end

  defp adaptive(fun) do
    fun.()
    budget = if short?(), do: 100_000, else: 400_000
    t0 = System.monotonic_time(:microsecond)
    count = loop(fun, t0, budget, 0)
    count * 1.0e6 / max(System.monotonic_time(:microsecond) - t0, 1)
  end

  defp loop(fun, t0, budget, count) do
    if count >= 3 and System.monotonic_time(:microsecond) - t0 > budget do
      count
    else
      fun.()
      loop(fun, t0, budget, count + 1)
    end
  end

  # A limit-100 query whose window covers the whole store, at growing sizes:
  # its cost must not grow with the store.
  def growth do
    sizes = if short?(), do: [100_000], else: [100_000, 1_000_000]

    rows =
      for n <- sizes do
        ns = {:test, make_ref()}
        {:ok, pid} = EventStore.start_link(namespace: ns, max_events: 0, max_age_seconds: 0)
        Process.unlink(pid)
        ctx = Original.start()

        for chunk <- Enum.chunk_every(1..n, 1000) do
          evs = Enum.map(chunk, &event/1)
          {:ok, _} = EventStore.store_batch(evs, namespace: ns)
          {:ok, _} = Original.store_batch(ctx, evs)
        end

        q = %{event_type: :type_3, time_range: {1, n}, limit: 100}
        ours = adaptive(fn -> {:ok, [_ | _]} = EventStore.query(q, namespace: ns) end)
        orig = adaptive(fn -> {:ok, [_ | _]} = Original.query(ctx, q) end)
        EventStore.stop(namespace: ns)
        Original.stop(ctx)
        [Harness.format(n), 1.0e6 / ours, 1.0e6 / orig, ours / orig]
      end

    Harness.table(
      "limit-100 query over the whole store (µs per call)",
      ["events", "project µs", "original µs", "ratio"],
      rows
    )
  end

  # Each round runs both sides back to back (alternating which goes first);
  # a row shows each side's median and the median of the rounds' ratios,
  # with their range, so one noisy moment on a shared machine neither
  # makes nor breaks a row.
  def main do
    rounds = String.to_integer(System.get_env("ROUNDS") || if(short?(), do: "1", else: "5"))

    results =
      for r <- 1..rounds do
        sides = if rem(r, 2) == 1, do: [:ours, :original], else: [:original, :ours]
        by_side = Map.new(sides, &{&1, run_side(apply(__MODULE__, &1, []))})
        Enum.zip(by_side.ours, by_side.original)
      end

    rows =
      results
      |> Enum.zip()
      |> Enum.map(fn per_row ->
        pairs = Tuple.to_list(per_row)
        [{{name, _}, _} | _] = pairs
        ours = Enum.map(pairs, fn {{_, a}, _} -> a end)
        orig = Enum.map(pairs, fn {_, {_, b}} -> b end)
        ratios = Enum.map(pairs, fn {{_, a}, {_, b}} -> a / b end)
        range = "#{Harness.format(Enum.min(ratios))}..#{Harness.format(Enum.max(ratios))}"
        [name, Harness.median(ours), Harness.median(orig), Harness.median(ratios), range]
      end)

    Harness.table(
      "drop-in: project vs original design (ops/s, #{@n} events, median of #{rounds} rounds)",
      ["operation", "project", "original", "ratio", "ratio range"],
      rows
    )

    growth()
  end
end

Bench.Dropin.main()
