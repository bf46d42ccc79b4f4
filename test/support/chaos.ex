defmodule ElixirScope.Foundation.TestSupport.Chaos do
  @moduledoc """
  Helpers of the reliability suites (`test/reliability/`): an isolated
  service cluster under a supervisor that tolerates many restarts, resource
  snapshots (processes, ETS tables, BEAM memory, OS RSS and threads), a
  seeded killer, and small measuring wrappers for callers.

  Everything runs in a `{:test, ref}` namespace: the application's own
  supervisor allows 3 restarts in 5 s and would give up under a killer.
  """

  alias ElixirScope.Foundation.ProcessRegistry
  alias ElixirScope.Foundation.Services.{ConfigServer, EventStore, TelemetryService}

  @services [:config_server, :event_store, :telemetry_service]
  # a-c register through the Registry (via tuple), d through the backup
  # table (`ProcessRegistry.register/3`).
  @workers [:chaos_worker_a, :chaos_worker_b, :chaos_worker_c, :chaos_worker_d]

  @doc "Names of the three services."
  def services, do: @services

  @doc "Names of the plain registry-backed worker processes of the cluster."
  def workers, do: @workers

  @doc """
  Starts the three services of `ns` (with `store_opts` for the EventStore
  and `telemetry_opts` for TelemetryService) and the worker agents, all
  registered through `ProcessRegistry.via_tuple/2`, under a fresh
  `Supervisor` (not linked to the caller) that allows many restarts.
  Returns the supervisor pid.
  """
  def start_cluster(ns, store_opts \\ [], telemetry_opts \\ []) do
    children =
      [
        Supervisor.child_spec({ConfigServer, [namespace: ns]}, id: :config_server),
        Supervisor.child_spec({EventStore, [namespace: ns] ++ store_opts}, id: :event_store),
        Supervisor.child_spec({TelemetryService, [namespace: ns] ++ telemetry_opts},
          id: :telemetry_service
        )
      ] ++ Enum.map(@workers, &worker_spec(ns, &1))

    parent = self()

    {pid, ref} =
      spawn_monitor(fn ->
        opts = [strategy: :one_for_one, max_restarts: 100_000, max_seconds: 1]
        {:ok, sup} = Supervisor.start_link(children, opts)
        Process.unlink(sup)
        send(parent, {:cluster, self(), sup})
      end)

    receive do
      {:cluster, ^pid, sup} ->
        Process.demonitor(ref, [:flush])
        sup
    after
      10_000 -> raise "cluster did not start"
    end
  end

  defp worker_spec(ns, :chaos_worker_d = name),
    do: %{id: name, start: {__MODULE__, :start_backup_worker, [ns, name]}}

  defp worker_spec(ns, name) do
    %{
      id: name,
      start: {Agent, :start_link, [fn -> 0 end, [name: ProcessRegistry.via_tuple(ns, name)]]}
    }
  end

  @doc false
  # An agent registered in the backup table; a restarted one replaces the
  # dead pid's row.
  def start_backup_worker(ns, name) do
    {:ok, pid} = Agent.start_link(fn -> 0 end)
    :ok = ProcessRegistry.register(ns, name, pid)
    {:ok, pid}
  end

  @doc "Rows of the registry's backup table (all namespaces)."
  def backup_rows, do: :ets.info(:process_registry_backup, :size)

  @doc "Stops a cluster started by `start_cluster/3` (normal shutdown)."
  def stop_cluster(sup), do: Supervisor.stop(sup, :shutdown, 30_000)

  @doc """
  Resource counts: BEAM processes, ETS tables, `:erlang.memory(:total)`, and
  the OS process's RSS (bytes) and thread count (from /proc, 0 elsewhere).
  """
  def snapshot do
    # Every process, not only the caller: garbage that a process has not
    # collected yet is not a leak.
    Enum.each(Process.list(), &:erlang.garbage_collect/1)
    {rss_kb, threads} = proc_status()

    %{
      processes: :erlang.system_info(:process_count),
      backup_rows: backup_rows(),
      ets: length(:ets.all()),
      memory: :erlang.memory(:total),
      # Outside process heaps: ETS, code, atoms and persistent_term literal areas.
      system: :erlang.memory(:system),
      breakdown: Map.new(:erlang.memory(), fn {k, v} -> {k, Float.round(v / 1_048_576, 1)} end),
      persistent_terms: :persistent_term.info(),
      rss: rss_kb * 1024,
      threads: threads
    }
  end

  @doc "`snapshot/0` without the garbage collection: BEAM memory and RSS only."
  def snapshot_light do
    {rss_kb, _threads} = proc_status()
    %{memory: :erlang.memory(:total), rss: rss_kb * 1024}
  end

  defp proc_status do
    case File.read("/proc/self/status") do
      {:ok, text} -> {status_field(text, "VmRSS"), status_field(text, "Threads")}
      {:error, _} -> {0, 0}
    end
  end

  defp status_field(text, field) do
    case Regex.run(~r/^#{field}:\s+(\d+)/m, text) do
      [_, n] -> String.to_integer(n)
      nil -> 0
    end
  end

  @doc """
  Kills, with `:kill`, a random process among `targets` (registered names
  in `ns`) every `pause` ms (random in `0..pause`) until `deadline`
  (monotonic ms). Seeds `:rand` with `seed`. Returns `%{name => kills}`.
  """
  def kill_loop(ns, targets, pause, deadline, seed) do
    :rand.seed(:exsss, seed)
    do_kill(ns, List.to_tuple(targets), pause, deadline, %{})
  end

  defp do_kill(ns, targets, pause, deadline, kills) do
    if System.monotonic_time(:millisecond) >= deadline do
      kills
    else
      name = elem(targets, :rand.uniform(tuple_size(targets)) - 1)

      kills =
        case ProcessRegistry.lookup(ns, name) do
          {:ok, pid} ->
            Process.exit(pid, :kill)
            Map.update(kills, name, 1, &(&1 + 1))

          :error ->
            kills
        end

      Process.sleep(:rand.uniform(pause + 1) - 1)
      do_kill(ns, targets, pause, deadline, kills)
    end
  end

  @doc """
  Runs `fun.()` and classifies the outcome: `{:ok, result}` for anything
  that is not an error, `{:error, reason}` for `{:error, reason}`, and
  `{:exit, reason}` when the call exited (a service dying mid-call).
  """
  def attempt(fun) do
    case fun.() do
      {:error, reason} -> {:error, reason}
      other -> {:ok, other}
    end
  catch
    :exit, reason -> {:exit, reason}
  end

  @doc "Like `attempt/1` but also returns the call's duration in microseconds."
  def timed(fun) do
    t0 = System.monotonic_time(:microsecond)
    result = attempt(fun)
    {result, System.monotonic_time(:microsecond) - t0}
  end

  @doc "Formats bytes as MB with one decimal."
  def mb(bytes), do: Float.round(bytes / 1_048_576, 1)
end
