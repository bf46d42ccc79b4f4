# Sandbox benchmark: what namespace resolution costs the plain facade calls,
# before any checkout in the VM and after one (as the owner, from a Task,
# from a process of no sandbox), against calls that name their namespace
# (no resolution); and what a checkout and a checkin cost.
# Run: MIX_ENV=test mix run bench/sandbox.exs
Code.require_file("support/harness.exs", __DIR__)

alias Bench.Harness
alias ElixirScope.Foundation.{Config, Events, Sandbox, Telemetry}

iterations = 200_000
path = [:ai, :planning, :sampling_rate]
{:ok, event} = Events.new_event(:bench, %{n: 1}, event_id: 1)

# The machine is shared: every figure is the best of 5 runs, in ns per call.
ns_per_call = fn fun ->
  best = Enum.max(for _ <- 1..5, do: Harness.ops_per_sec(fun, iterations: iterations))
  1.0e9 / best
end

ops = fn opts ->
  [
    {"Sandbox.namespace/1", fn -> Sandbox.namespace(opts) end},
    {"Config.get/1", fn -> {:ok, _} = Config.get(path, opts) end},
    {"Events.store/1", fn -> {:ok, 1} = Events.store(event, opts) end},
    {"Telemetry.emit_counter/2", fn -> :ok = Telemetry.emit_counter([:bench, :c], %{}, opts) end}
  ]
end

measure = fn opts -> Map.new(ops.(opts), fn {name, fun} -> {name, ns_per_call.(fun)} end) end

# Runs `fun` in a process that belongs to no sandbox (no `$callers`).
in_plain_process = fn fun ->
  parent = self()
  spawn(fn -> send(parent, {:result, fun.()}) end)
  receive do: ({:result, r} -> r)
end

# 1. Before any checkout in the VM: the plain calls pay one
#    :persistent_term read; the explicit ones none.
false = :persistent_term.get(:elixir_scope_foundation_sandbox_active, false)
explicit = measure.(namespace: :production)
before = measure.([])

# 2. After a checkout.
namespace = Sandbox.checkout()
owner = measure.([])
task = Task.await(Task.async(fn -> measure.([]) end), :infinity)
outside = in_plain_process.(fn -> measure.([]) end)
explicit_after = measure.(namespace: namespace)
:ok = Sandbox.checkin()

# 3. Checkout and checkin, in a fresh process each time (median of 500).
median = fn list -> list |> Enum.sort() |> Enum.at(div(length(list), 2)) end

{outs, ins} =
  1..500
  |> Enum.map(fn _ ->
    in_plain_process.(fn ->
      {out_us, _} = :timer.tc(fn -> Sandbox.checkout() end)
      {in_us, :ok} = :timer.tc(fn -> Sandbox.checkin() end)
      {out_us, in_us}
    end)
  end)
  |> Enum.unzip()

Harness.table(
  "Plain facade calls, ns/call (best of 5 x #{iterations})",
  [
    "call",
    "named :production (no resolution)",
    "before any checkout",
    "sandbox owner",
    "Task of the owner",
    "process of no sandbox",
    "named sandbox"
  ],
  for {name, _} <- ops.([]) do
    [
      name,
      explicit[name],
      before[name],
      owner[name],
      task[name],
      outside[name],
      explicit_after[name]
    ]
  end
)

Harness.table(
  "Checkout / checkin, µs (median of 500, min, max)",
  ["op", "median", "min", "max"],
  [
    ["checkout", median.(outs), Enum.min(outs), Enum.max(outs)],
    ["checkin", median.(ins), Enum.min(ins), Enum.max(ins)]
  ]
)
