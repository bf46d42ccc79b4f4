# Services benchmark: config reads/updates, telemetry counters, registry lookups,
# each against a reference with the original's design (bench/support) and the
# BEAM's own limits. Run: MIX_ENV=test mix run bench/services.exs
Code.require_file("support/harness.exs", __DIR__)
Code.require_file("../test/support/validation_reference.ex", __DIR__)
Code.require_file("support/reference_event_store.exs", __DIR__)
Code.require_file("support/original.exs", __DIR__)

alias Bench.{Harness, Original}
alias ElixirScope.Foundation.{Config, ServiceRegistry}

workers = 8
reads = 20_000
path = [:ai, :planning, :sampling_rate]

original = Original.start()
{:ok, ref_telemetry} = Original.lookup(original, :telemetry_service)
:persistent_term.put(:bench_config, %{ai: %{planning: %{sampling_rate: 1.0}}})
counters = :counters.new(1, [:write_concurrency])

# The machine is shared: every figure is the best of 3 runs.
best = fn run -> Enum.max(for _ <- 1..3, do: run.()) end

par = fn fun, per_worker ->
  best.(fn -> Harness.concurrent_ops_per_sec(workers, per_worker, fn _w, _i -> fun.() end) end)
end

# 1. Config reads from 8 processes.
ours_get = par.(fn -> {:ok, _} = Config.get(path) end, 5 * reads)
ref_get = par.(fn -> {:ok, _} = Original.config_get(original, path) end, reads)
raw_get = par.(fn -> get_in(:persistent_term.get(:bench_config), path) end, 5 * reads)

# 2. Config updates (serialized by design), one caller.
values = Stream.cycle([0.5, 1.0])
update_n = 2_000

{_, ours_t} =
  Harness.time(fn -> Enum.each(Enum.take(values, update_n), &(:ok = Config.update(path, &1))) end)

{_, ref_t} =
  Harness.time(fn ->
    Enum.each(
      Enum.take(values, update_n),
      &(:ok = Original.config_update(original, path, &1))
    )
  end)

# 2b. Config updates from 8 processes: the group commit answers every update
# that arrived since the last publication with one publication.
update_value = fn i -> if rem(i, 2) == 0, do: 0.5, else: 1.0 end
per_updater = div(update_n, workers)

ours_update_x8 =
  Harness.concurrent_ops_per_sec(workers, per_updater, fn _w, i ->
    :ok = Config.update(path, update_value.(i))
  end)

ref_update_x8 =
  Harness.concurrent_ops_per_sec(workers, per_updater, fn _w, i ->
    :ok = Original.config_update(original, path, update_value.(i))
  end)

# 3. Counters from 8 processes, then read back.
emits = 20_000
flood = fn emit -> Harness.concurrent_ops_per_sec(workers, emits, fn _w, _i -> emit.() end) end
# Each run: flood, mailbox length right after, then the time get_metrics takes.
flood_runs = fn emit, server, get ->
  for _ <- 1..3 do
    rate = flood.(emit)
    {:message_queue_len, q} = Process.info(server, :message_queue_len)
    {_, t} = Harness.time(get)
    {rate, q, t}
  end
end

facade = ElixirScope.Foundation.Telemetry
{:ok, ts} = ServiceRegistry.lookup(:production, :telemetry_service)

ours_runs =
  flood_runs.(fn -> facade.emit_counter([:bench, :counter], %{}) end, ts, fn ->
    {:ok, _} = facade.get_metrics()
  end)

{ours_emit, ours_q, ours_get_t} = Enum.max_by(ours_runs, &elem(&1, 0))

ref_runs =
  flood_runs.(
    fn -> Original.emit_counter(original, [:bench, :counter], %{}) end,
    ref_telemetry,
    fn -> Original.get_metrics(original) end
  )

# Effective rate of the reference: its casts are recorded only once the
# mailbox is drained, i.e. when get_metrics returns.
{ref_emit_total, ref_q, ref_get_t} =
  ref_runs
  |> Enum.map(fn {rate, q, t} -> {workers * emits / (workers * emits / rate + t), q, t} end)
  |> Enum.max_by(&elem(&1, 0))

ms = fn t -> Float.round(t * 1000, 2) end

raw_emit = best.(fn -> flood.(fn -> :counters.add(counters, 1, 1) end) end)

# 4. Registry lookups from 8 processes.
ours_lookup =
  par.(fn -> {:ok, _} = ServiceRegistry.lookup(:production, :config_server) end, reads)

raw_lookup =
  par.(
    fn ->
      [_] = Registry.lookup(ElixirScope.Foundation.ProcessRegistry, {:production, :config_server})
    end,
    reads
  )

Harness.table(
  "Services (#{workers} processes, #{System.schedulers_online()} schedulers, best of 3)",
  ["operation", "ops/s", "note"],
  [
    ["Config.get/1 x8 (ours)", ours_get, "#{Float.round(ours_get / ref_get, 1)}x reference"],
    ["Config.get/1 x8 (reference: GenServer.call)", ref_get, ""],
    ["limit: :persistent_term.get x8", raw_get, ""],
    ["Config.update/2 (ours)", update_n / ours_t, "#{Float.round(ref_t / ours_t, 2)}x reference"],
    ["Config.update/2 (reference: sync audit call)", update_n / ref_t, ""],
    [
      "Config.update/2 x8 (ours)",
      ours_update_x8,
      "#{Float.round(ours_update_x8 / ref_update_x8, 2)}x reference"
    ],
    ["Config.update/2 x8 (reference)", ref_update_x8, ""],
    [
      "Telemetry.emit_counter/2 x8 (ours)",
      ours_emit,
      "#{Float.round(ours_emit / ref_emit_total, 1)}x reference; " <>
        "queue after flood: #{ours_q}; get_metrics #{ms.(ours_get_t)} ms"
    ],
    [
      "emit_counter x8 (reference: cast, rate incl. drain)",
      ref_emit_total,
      "queue after flood: #{ref_q}; get_metrics #{ms.(ref_get_t)} ms"
    ],
    ["limit: :counters.add x8", raw_emit, ""],
    ["ServiceRegistry.lookup/2 x8 (ours)", ours_lookup, "records + forwards a telemetry event"],
    ["limit: Registry.lookup/2 x8", raw_lookup, ""]
  ]
)
