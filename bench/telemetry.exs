# TelemetryService hot path: counters/gauges/execute recorded from the caller
# into the Rust metrics, against a GenServer-cast design (the original's).
# Run: MIX_ENV=test mix run bench/telemetry.exs   (about 20 s)
Code.require_file("support/harness.exs", __DIR__)

alias Bench.Harness
alias ElixirScope.Foundation.Services.TelemetryService

defmodule Bench.CastTelemetry do
  # The original's design: one GenServer, cast per event, map merge in the server.
  use GenServer
  def start, do: GenServer.start(__MODULE__, %{})
  def emit(pid, name), do: GenServer.cast(pid, {:emit, name})
  def get(pid), do: GenServer.call(pid, :get, :infinity)
  @impl true
  def init(s), do: {:ok, s}
  @impl true
  def handle_cast({:emit, name}, s) do
    {:noreply,
     Map.update(s, name, %{count: 1, measurements: %{counter: 1}}, fn e ->
       %{e | count: e.count + 1, measurements: %{counter: e.measurements.counter + 1}}
     end)}
  end

  @impl true
  def handle_call(:get, _from, s), do: {:reply, s, s}
end

ns = {:test, make_ref()}
{:ok, _} = TelemetryService.start_link(namespace: ns, enable_vm_metrics: false)
opts = [namespace: ns]
n = 50_000
workers = 8

single_counter =
  Harness.ops_per_sec(fn -> TelemetryService.emit_counter([:b, :c], 1, %{}, opts) end,
    iterations: n
  )

single_gauge =
  Harness.ops_per_sec(fn -> TelemetryService.emit_gauge([:b, :g], 3, %{}, opts) end,
    iterations: n
  )

single_exec =
  Harness.ops_per_sec(
    fn -> TelemetryService.execute([:b, :e], %{duration: 10, size: 3}, %{k: 1}, opts) end,
    iterations: n
  )

par_counter =
  Harness.concurrent_ops_per_sec(workers, n, fn _, _ ->
    TelemetryService.emit_counter([:b, :par], 1, %{}, opts)
  end)

par_distinct =
  Harness.concurrent_ops_per_sec(workers, n, fn w, _ ->
    TelemetryService.emit_counter([:b, :distinct, w], 1, %{}, opts)
  end)

{:ok, ref} = Bench.CastTelemetry.start()

{_, cast_t} =
  Harness.time(fn ->
    Harness.concurrent_ops_per_sec(workers, n, fn _, _ -> Bench.CastTelemetry.emit(ref, :c) end)
    # Only done once the mailbox is drained.
    Bench.CastTelemetry.get(ref)
  end)

cast_rate = workers * n / cast_t

for i <- 1..1_000, do: TelemetryService.emit_counter([:many, :"m#{i}"], 1, %{i: i}, opts)
{{:ok, _}, get_t} = Harness.time(fn -> TelemetryService.get_metrics(opts) end)

Harness.table(
  "TelemetryService (ops/s; 2-core machine shared with other jobs)",
  ["operation", "ops/s"],
  [
    ["emit_counter, 1 process", single_counter],
    ["emit_gauge, 1 process", single_gauge],
    ["execute (2 measurements), 1 process", single_exec],
    ["emit_counter same name, 8 processes", par_counter],
    ["emit_counter 8 names, 8 processes", par_distinct],
    ["GenServer.cast design, 8 processes (until drained)", cast_rate],
    ["get_metrics with ~1 010 metrics (calls/s)", 1 / get_t]
  ]
)
