defmodule Bench.Stretches do
  @moduledoc """
  How long a process stays on a *normal* scheduler in one go while it runs a
  workload: the direct form of "no call keeps a normal scheduler busy over
  ~1 ms", without the probe's dependence on what else the 2 cores run.

  One process runs the workload in a loop, traced with `[:running,
  :monotonic_timestamp, :scheduler_id]`; every `in` on a scheduler with id
  > 0 (0 is a dirty scheduler) up to the next `out` is one stretch. A dirty
  NIF call ends a stretch (the process leaves for the dirty scheduler), a
  yielding BIF or a reduction-based preemption too; a NIF or BIF that
  neither yields nor is preempted shows as one long stretch. Stretches are
  wall time, so an OS preemption of the scheduler thread inflates one: run
  it on an otherwise idle machine. A workload returning `{:timed, t0, t1}`
  (µs, monotonic) counts only the stretches that overlap `t0..t1` (the
  prune workload's untimed refill is excluded, as in the probe table).
  """

  @doc """
  Runs `work` for `ms` ms in one traced process. Returns `[calls, stretches,
  p50, p99, max, longest]` (µs; `longest` names where the longest stretch
  began and ended).
  """
  def measure(work, ms) do
    stop = :atomics.new(1, [])
    parent = self()
    {pid, mref} = spawn_monitor(fn -> loop(work, stop, parent, receive(do: (:go -> 0))) end)
    :erlang.trace(pid, true, [:running, :monotonic_timestamp, :scheduler_id])
    send(pid, :go)
    Process.sleep(ms)
    :atomics.put(stop, 1, 1)

    {calls, timed} =
      receive do
        {:calls, ^pid, n, timed} -> {n, timed}
        {:DOWN, ^mref, :process, ^pid, reason} -> raise "workload crashed: #{inspect(reason)}"
      end

    Process.demonitor(mref, [:flush])
    ref = :erlang.trace_delivered(pid)
    receive(do: ({:trace_delivered, ^pid, ^ref} -> :ok))
    stretches = pid |> collect([]) |> pair([]) |> within(timed)
    [calls, length(stretches) | stats(stretches)]
  end

  defp loop(work, stop, parent, calls, timed \\ []) do
    if :atomics.get(stop, 1) == 1 do
      send(parent, {:calls, self(), calls, timed})
    else
      case work.() do
        {:timed, t0, t1} -> loop(work, stop, parent, calls + 1, [{t0, t1} | timed])
        _ -> loop(work, stop, parent, calls + 1, timed)
      end
    end
  end

  defp within(stretches, []), do: stretches

  defp within(stretches, timed) do
    Enum.filter(stretches, fn {_us, _where, a, b} ->
      Enum.any?(timed, fn {t0, t1} -> a <= t1 and b >= t0 end)
    end)
  end

  defp collect(pid, acc) do
    receive do
      {:trace_ts, ^pid, kind, mfa, sched, ts} -> collect(pid, [{kind, mfa, sched, ts} | acc])
    after
      0 -> Enum.reverse(acc)
    end
  end

  # {length µs, "in -> out"} of each stretch on a normal scheduler.
  defp pair([{kind_in, mfa_in, sched, t0}, {kind_out, mfa_out, _, t1} | rest], acc)
       when kind_in in [:in, :in_exiting] and sched > 0 and
              kind_out in [:out, :out_exiting, :out_exited] do
    [a, b] = Enum.map([t0, t1], &System.convert_time_unit(&1, :native, :microsecond))
    pair(rest, [{b - a, "#{name(mfa_in)} -> #{name(mfa_out)}", a, b} | acc])
  end

  defp pair([_ | rest], acc), do: pair(rest, acc)
  defp pair([], acc), do: acc

  defp stats([]), do: [0, 0, 0, ""]

  defp stats(stretches) do
    sorted = Enum.sort(stretches)
    n = length(sorted)
    pick = fn q -> sorted |> Enum.at(min(n - 1, trunc(q * n))) |> elem(0) end
    {max, where, _, _} = List.last(sorted)
    [pick.(0.5), pick.(0.99), max, where]
  end

  defp name({m, f, a}), do: "#{inspect(m)}.#{f}/#{a}"
  defp name(other), do: inspect(other)
end
