# Big reads vs. the rest of the VM: how late does a sleeping process wake
# while four processes read large answers from the store at once?
#
#   MIX_ENV=prod mix run bench/big_reads_latency.exs
#   READ_SECONDS=2 MIX_ENV=prod mix run bench/big_reads_latency.exs   # CI form
#
# Setup: 200 000 stored events (10 types, 4 correlation ids of 50 000
# events each). Four worker processes each run one read in a loop and drop
# its result in the worker (no message copy is measured):
#
#   * `query(%{event_type: t})`                      (20 000 events)
#   * `get_by_correlation(cid)`                      (50 000 events)
#   * `query(%{event_type: t, order_by: :event_id, offset: 10_000, limit: 5_000})`
#   * `query(%{order_by: :event_id, offset: 100_000, limit: 50_000})`
#
# A probe process sleeps 1 ms in a loop and records how late it wakes
# (lateness = elapsed - 1 ms). Run with the VM's default flags: a library
# cannot ask its hosts to change them. The same workload against the model
# of the original (a GenServer over a map) runs in the same VM. Long
# answers are read by at most `LONG_READS` processes at once (the
# library's `:long_reads` `concurrency`; default: one scheduler fewer than
# the VM has; `unlimited` for no bound).
Code.require_file("support/harness.exs", __DIR__)
Code.require_file("support/reference_event_store.exs", __DIR__)

defmodule Bench.BigReads do
  alias Bench.{Harness, ReferenceEventStore}
  alias ElixirScope.Foundation.Services.EventStore
  alias ElixirScope.Foundation.Types.Event

  @n 200_000
  @seconds String.to_integer(System.get_env("READ_SECONDS", "6"))

  defp event(i) do
    %Event{
      event_id: i,
      event_type: :"type_#{rem(i, 10)}",
      timestamp: i,
      wall_time: nil,
      node: node(),
      pid: self(),
      correlation_id: "corr-#{rem(i, 4)}",
      parent_id: nil,
      data: %{i: i}
    }
  end

  defp reads do
    [
      %{event_type: :type_3},
      {:correlation, "corr-1"},
      %{event_type: :type_5, order_by: :event_id, offset: 10_000, limit: 5_000},
      %{order_by: :event_id, offset: 100_000, limit: 50_000}
    ]
  end

  def run do
    case System.get_env("LONG_READS") do
      nil -> :ok
      "unlimited" -> set_long_reads(:unlimited)
      n -> set_long_reads(String.to_integer(n))
    end

    IO.puts(
      "schedulers: #{System.schedulers_online()} normal, " <>
        "#{:erlang.system_info(:dirty_cpu_schedulers_online)} dirty CPU; #{@seconds} s per side"
    )

    damon_note()

    ns = {:test, make_ref()}
    {:ok, pid} = EventStore.start_link(namespace: ns, max_events: 0, max_age_seconds: 0)
    Process.unlink(pid)
    {:ok, ref} = ReferenceEventStore.start()

    for chunk <- Enum.chunk_every(1..@n, 1000) do
      evs = Enum.map(chunk, &event/1)
      {:ok, _} = EventStore.store_batch(evs, namespace: ns)
      {:ok, _} = ReferenceEventStore.store_batch(ref, evs)
    end

    ours = fn
      {:correlation, cid} -> EventStore.get_by_correlation(cid, namespace: ns)
      q -> EventStore.query(q, namespace: ns)
    end

    original = fn
      {:correlation, cid} -> ReferenceEventStore.get_by_correlation(ref, cid)
      q -> ReferenceEventStore.query(ref, q)
    end

    idle = fn _ -> Process.sleep(50) && {:ok, []} end

    # As a release does at boot: `mix run` loads a module at its first
    # call, and loading the store's read path while the probe runs cost
    # it 6-18 ms in the first 50 ms of a row.
    for m <- Application.spec(:elixir_scope_foundation, :modules), do: Code.ensure_loaded(m)

    rows = [
      measure("no readers", idle),
      measure("project", ours),
      measure("original design", original)
    ]

    Harness.table(
      "probe lateness (µs) with four big readers",
      ["store", "samples", "p50", "p99", "max", "reads done"],
      rows
    )
  end

  # The kernel's DAMON reclaim (a `kdamond` thread paging out memory it
  # finds cold) takes a CPU for milliseconds at a time, ahead of the VM's
  # scheduler threads: a max over 10 ms here is usually such a stall.
  defp damon_note do
    on =
      "/sys/kernel/mm/damon/admin/kdamonds/*/state"
      |> Path.wildcard()
      |> Enum.count(&(File.read!(&1) |> String.trim() == "on"))

    if on > 0 do
      IO.puts("note: #{on} kernel DAMON monitor(s) running (kdamond); see docs/benchmarks.md")
    end
  end

  # The gate reads its limit when it starts.
  defp set_long_reads(concurrency) do
    Application.put_env(:elixir_scope_foundation, :long_reads, concurrency: concurrency)
    gate = ElixirScope.Foundation.Services.EventStore.ReadGate
    :ok = Supervisor.terminate_child(ElixirScope.Foundation.Supervisor, gate)
    {:ok, _} = Supervisor.restart_child(ElixirScope.Foundation.Supervisor, gate)
  end

  defp measure(name, read) do
    :erlang.garbage_collect()
    parent = self()
    stop_at = System.monotonic_time(:millisecond) + @seconds * 1000

    workers =
      for q <- reads() do
        spawn_link(fn -> send(parent, {:reads, loop(read, q, stop_at, 0)}) end)
      end

    lateness = probe(stop_at, [])
    done = for _ <- workers, reduce: 0, do: (n -> receive(do: ({:reads, k} -> n + k)))
    sorted = Enum.sort(lateness)
    count = length(sorted)
    at = fn p -> Enum.at(sorted, min(count - 1, trunc(count * p))) end
    [name, count, at.(0.5), at.(0.99), List.last(sorted), done]
  end

  defp loop(read, q, stop_at, n) do
    if System.monotonic_time(:millisecond) >= stop_at do
      n
    else
      {:ok, _} = read.(q)
      loop(read, q, stop_at, n + 1)
    end
  end

  defp probe(stop_at, acc) do
    t0 = System.monotonic_time(:microsecond)

    receive do
    after
      1 -> :ok
    end

    late = System.monotonic_time(:microsecond) - t0 - 1000

    if System.monotonic_time(:millisecond) >= stop_at,
      do: acc,
      else: probe(stop_at, [late | acc])
  end
end

Bench.BigReads.run()
