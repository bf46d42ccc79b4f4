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
  it on an otherwise idle machine.
  """

  @doc """
  Runs `work` for `ms` ms in one traced process. Returns `[calls, stretches,
  p50, p99, max, longest]` (µs; `longest` names where the longest stretch
  began and ended).
  """
  def measure(work, ms) do
    stop = :atomics.new(1, [])
    parent = self()
    pid = spawn(fn -> loop(work, stop, parent, receive(do: (:go -> 0))) end)
    :erlang.trace(pid, true, [:running, :monotonic_timestamp, :scheduler_id])
    send(pid, :go)
    Process.sleep(ms)
    :atomics.put(stop, 1, 1)
    calls = receive(do: ({:calls, ^pid, n} -> n))
    ref = :erlang.trace_delivered(pid)
    receive(do: ({:trace_delivered, ^pid, ^ref} -> :ok))
    stretches = pid |> collect([]) |> pair([])
    [calls, length(stretches) | stats(stretches)]
  end

  defp loop(work, stop, parent, calls) do
    if :atomics.get(stop, 1) == 1 do
      send(parent, {:calls, self(), calls})
    else
      work.()
      loop(work, stop, parent, calls + 1)
    end
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
    us = System.convert_time_unit(t1 - t0, :native, :microsecond)
    pair(rest, [{us, "#{name(mfa_in)} -> #{name(mfa_out)}"} | acc])
  end

  defp pair([_ | rest], acc), do: pair(rest, acc)
  defp pair([], acc), do: acc

  defp stats([]), do: [0, 0, 0, ""]

  defp stats(stretches) do
    sorted = Enum.sort(stretches)
    n = length(sorted)
    pick = fn q -> sorted |> Enum.at(min(n - 1, trunc(q * n))) |> elem(0) end
    {max, where} = List.last(sorted)
    [pick.(0.5), pick.(0.99), max, where]
  end

  defp name({m, f, a}), do: "#{inspect(m)}.#{f}/#{a}"
  defp name(other), do: inspect(other)
end
