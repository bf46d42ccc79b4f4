# Sandbox benchmark: what namespace resolution costs the plain facade calls,
# before any checkout in the VM and after one (as the owner, from a Task,
# from a process of no sandbox), against calls that name their namespace
# (no resolution); and what a checkout and a checkin cost.
# Run: MIX_ENV=test mix run bench/sandbox.exs
Code.require_file("support/harness.exs", __DIR__)

alias Bench.Harness
alias ElixirScope.Foundation.{Config, Events, Sandbox, Telemetry}

path = [:ai, :planning, :sampling_rate]
{:ok, event} = Events.new_event(:bench, %{n: 1}, event_id: 1)

defmodule Bench.SandboxOps do
  @moduledoc false
  # Compiled loops (closures defined in a script are interpreted, which
  # would dwarf the calls measured).
  @calls [
    {"Sandbox.namespace/1", :namespace, 200_000},
    {"Config.get/1", :config_get, 200_000},
    {"Events.store/1", :store, 20_000},
    {"Telemetry.emit_counter/2", :emit_counter, 200_000}
  ]

  def calls, do: @calls

  # ns per call of each op with `opts`: the best of 5 runs (the machine is
  # shared).
  def measure(opts, path, event) do
    Map.new(@calls, fn {name, op, n} ->
      loop(op, opts, path, event, div(n, 10))

      best =
        Enum.min(for _ <- 1..5, do: elem(:timer.tc(fn -> loop(op, opts, path, event, n) end), 0))

      {name, best * 1000 / n}
    end)
  end

  defp loop(_op, _opts, _path, _event, 0), do: :ok

  defp loop(op, opts, path, event, n) do
    call(op, opts, path, event)
    loop(op, opts, path, event, n - 1)
  end

  defp call(:namespace, opts, _path, _event), do: Sandbox.namespace(opts)
  defp call(:config_get, [], path, _event), do: {:ok, _} = Config.get(path)
  defp call(:config_get, opts, path, _event), do: {:ok, _} = Config.get(path, opts)
  defp call(:store, [], _path, event), do: {:ok, 1} = Events.store(event)
  defp call(:store, opts, _path, event), do: {:ok, 1} = Events.store(event, opts)
  defp call(:emit_counter, [], _path, _event), do: :ok = Telemetry.emit_counter([:bench, :c], %{})

  defp call(:emit_counter, opts, _path, _event),
    do: :ok = Telemetry.emit_counter([:bench, :c], %{}, opts)
end

measure = fn opts -> Bench.SandboxOps.measure(opts, path, event) end

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
  "Plain facade calls, ns/call (best of 5)",
  [
    "call",
    "named :production (no resolution)",
    "before any checkout",
    "sandbox owner",
    "Task of the owner",
    "process of no sandbox",
    "named sandbox"
  ],
  for {name, _op, _n} <- Bench.SandboxOps.calls() do
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

IO.puts("\nload average while measuring: #{String.trim(File.read!("/proc/loadavg"))}")
