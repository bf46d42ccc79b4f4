# Services benchmark: config reads/updates, telemetry counters, registry lookups,
# each against a reference with the original's design (bench/support) and the
# BEAM's own limits. Run: MIX_ENV=test mix run bench/services.exs
Code.require_file("support/harness.exs", __DIR__)
Code.require_file("support/reference_services.exs", __DIR__)

alias Bench.{Harness, Reference}
alias ElixirScope.Foundation.{Config, ServiceRegistry}
alias ElixirScope.Foundation.Services.TelemetryService

workers = 8
reads = 20_000
path = [:ai, :planning, :sampling_rate]

{:ok, store} = Reference.Store.start()
{:ok, ref_config} = Reference.ConfigServer.start(store)
{:ok, ref_telemetry} = Reference.Telemetry.start()
:persistent_term.put(:bench_config, %{ai: %{planning: %{sampling_rate: 1.0}}})
counters = :counters.new(1, [:write_concurrency])

par = fn fun -> Harness.concurrent_ops_per_sec(workers, reads, fn _w, _i -> fun.() end) end

# 1. Config reads from 8 processes.
ours_get = par.(fn -> {:ok, _} = Config.get(path) end)
ref_get = par.(fn -> {:ok, _} = Reference.ConfigServer.get(ref_config, path) end)
raw_get = par.(fn -> get_in(:persistent_term.get(:bench_config), path) end)

# 2. Config updates (serialized by design), one caller.
values = Stream.cycle([0.5, 1.0])
update_n = 2_000

{_, ours_t} =
  Harness.time(fn -> Enum.each(Enum.take(values, update_n), &(:ok = Config.update(path, &1))) end)

{_, ref_t} =
  Harness.time(fn ->
    Enum.each(
      Enum.take(values, update_n),
      &(:ok = Reference.ConfigServer.update(ref_config, path, &1))
    )
  end)

# 3. Counters from 8 processes, then read back.
emits = 20_000
flood = fn emit -> Harness.concurrent_ops_per_sec(workers, emits, fn _w, _i -> emit.() end) end

telemetry_rows =
  if Code.ensure_loaded?(TelemetryService) do
    facade = ElixirScope.Foundation.Telemetry
    ours_emit = flood.(fn -> apply(facade, :emit_counter, [[:bench, :counter], %{}]) end)
    {:ok, ts} = ServiceRegistry.lookup(:production, :telemetry_service)
    {:message_queue_len, q} = Process.info(ts, :message_queue_len)
    {{:ok, _}, get_t} = Harness.time(fn -> apply(facade, :get_metrics, []) end)

    [
      [
        "Telemetry.emit_counter/2 x8 (ours)",
        ours_emit,
        "queue after flood: #{q}; get_metrics #{Float.round(get_t * 1000, 2)} ms"
      ]
    ]
  else
    [["Telemetry.emit_counter/2 x8 (ours)", "pending", "TelemetryService (h5) not in this build"]]
  end

{ref_emit_total, ref_q, ref_get_t} =
  (fn ->
     rate =
       flood.(fn -> Reference.Telemetry.emit_counter(ref_telemetry, [:bench, :counter], %{}) end)

     {:message_queue_len, q} = Process.info(ref_telemetry, :message_queue_len)
     {_, t} = Harness.time(fn -> Reference.Telemetry.get_metrics(ref_telemetry) end)
     # Effective rate: the casts are only done once the mailbox is drained.
     {workers * emits / (workers * emits / rate + t), q, t}
   end).()

raw_emit = flood.(fn -> :counters.add(counters, 1, 1) end)

# 4. Registry lookups from 8 processes.
ours_lookup = par.(fn -> {:ok, _} = ServiceRegistry.lookup(:production, :config_server) end)

raw_lookup =
  par.(fn ->
    [_] = Registry.lookup(ElixirScope.Foundation.ProcessRegistry, {:production, :config_server})
  end)

Harness.table(
  "Services (#{workers} processes, #{System.schedulers_online()} schedulers)",
  ["operation", "ops/s", "note"],
  [
    [
      "Config.get/1 x8 (ours, persistent_term)",
      ours_get,
      "#{Float.round(ours_get / ref_get, 1)}x reference"
    ],
    ["Config.get/1 x8 (reference: GenServer.call)", ref_get, ""],
    ["limit: :persistent_term.get x8", raw_get, ""],
    [
      "Config.update/2 (ours, async audit)",
      update_n / ours_t,
      "#{Float.round(ref_t / ours_t, 1)}x reference"
    ],
    ["Config.update/2 (reference: sync audit call)", update_n / ref_t, ""]
  ] ++
    telemetry_rows ++
    [
      [
        "emit_counter x8 (reference: cast, incl. drain)",
        ref_emit_total,
        "queue after flood: #{ref_q}; get_metrics #{Float.round(ref_get_t * 1000, 2)} ms"
      ],
      ["limit: :counters.add x8", raw_emit, ""],
      ["ServiceRegistry.lookup/2 x8 (ours)", ours_lookup, "emits a telemetry event per call"],
      ["limit: Registry.lookup/2 x8", raw_lookup, ""]
    ]
)
