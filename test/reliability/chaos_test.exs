defmodule ElixirScope.Foundation.Reliability.ChaosTest do
  # Writers, config updaters, telemetry emitters and readers work while a
  # seeded killer kills ConfigServer, EventStore, TelemetryService and plain
  # registry-backed processes at random. Errors and exits seen by callers
  # while a service restarts are counted, not failures; an acknowledged
  # write that is lost is.
  #
  # Default run: a short version (~3 s). `mix test --only chaos`: the long one.
  use ExUnit.Case, async: false

  alias ElixirScope.Foundation.{
    ProcessRegistry,
    ServiceRegistry,
    TestSupport.Chaos,
    TestSupport.Eventually
  }

  alias ElixirScope.Foundation.Services.{ConfigServer, EventStore, TelemetryService}
  alias ElixirScope.Foundation.Types.Event

  # Each updater owns one path and walks through values distinct from the
  # default, so a config that fell back to defaults is caught.
  @paths [
    {[:interface, :max_results], &__MODULE__.max_results/1},
    {[:interface, :query_timeout], &__MODULE__.query_timeout/1},
    {[:capture, :processing, :batch_size], &__MODULE__.batch_size/1}
  ]

  @doc false
  def max_results(i), do: 2_000 + i
  @doc false
  def query_timeout(i), do: 20_000 + i
  @doc false
  def batch_size(i), do: 200 + i

  @tag :chaos_short
  test "short chaos run: no acknowledged write is lost, everything recovers" do
    report = run(duration: 2_500, writers: 4, emitters: 2, readers: 2, pause: 25, seed: {1, 2, 3})
    assert report.kills_total > 20
  end

  @tag :chaos
  @tag timeout: 300_000
  test "long chaos run: no acknowledged write is lost, everything recovers" do
    report =
      run(duration: 60_000, writers: 8, emitters: 4, readers: 4, pause: 20, seed: {7, 8, 9})

    assert report.kills_total > 500
  end

  defp run(opts) do
    before = settle_snapshot()
    ref = make_ref()
    ns = {:test, ref}
    sup = Chaos.start_cluster(ns, [max_events: 0, max_age_seconds: 0], enable_vm_metrics: false)
    on_exit(fn -> if Process.alive?(sup), do: Chaos.stop_cluster(sup) end)
    deadline = System.monotonic_time(:millisecond) + opts[:duration]

    killer =
      Task.async(fn ->
        targets = Chaos.services() ++ Chaos.workers()
        Chaos.kill_loop(ns, targets, opts[:pause], deadline, opts[:seed])
      end)

    writers = for w <- 1..opts[:writers], do: Task.async(fn -> writer(ns, w, deadline) end)

    updaters =
      for {path, gen} <- @paths, do: Task.async(fn -> updater(ns, path, gen, deadline) end)

    emitters = for _ <- 1..opts[:emitters], do: Task.async(fn -> emitter(ns, deadline) end)
    readers = for r <- 1..opts[:readers], do: Task.async(fn -> reader(ns, r, deadline) end)

    kills = Task.await(killer, opts[:duration] + 30_000)
    writes = Task.await_many(writers, 60_000)
    updates = Task.await_many(updaters, 60_000)
    emits = Task.await_many(emitters, 60_000)
    reads = Task.await_many(readers, 60_000)

    assert_recovered(ns)
    assert_no_lost_event(ns, writes)
    assert_config(ns, updates)
    counts = counts(kills, writes, updates, emits, reads)
    finish(sup, ref, before, counts, opts[:duration])
  end

  # Separate function so the callers' result lists are garbage before the
  # memory is measured.
  defp finish(sup, ref, before, counts, duration) do
    during = Chaos.snapshot()
    Chaos.stop_cluster(sup)
    # Deletes the backup-table rows of the namespace (worker d's).
    :ok = ProcessRegistry.cleanup_test_namespace(ref)
    after_ = assert_no_leak(before)

    report =
      Map.merge(counts, %{
        memory_mb: mbs(before.memory, during.memory, after_.memory),
        memory_by_kind_mb: {before.breakdown, after_.breakdown},
        persistent_terms: {before.persistent_terms, after_.persistent_terms},
        rss_mb: mbs(before.rss, during.rss, after_.rss),
        processes: {before.processes, after_.processes},
        ets: {before.ets, after_.ets},
        backup_rows: {before.backup_rows, after_.backup_rows},
        os_threads: {before.threads, after_.threads},
        settle_ms: after_.settle_ms,
        memory_settle_ms: after_.memory_settle_ms
      })

    IO.puts("\nchaos #{duration} ms: #{inspect(report, limit: :infinity)}")
    report
  end

  defp mbs(before, during, after_),
    do: %{before: Chaos.mb(before), during: Chaos.mb(during), after: Chaos.mb(after_)}

  ## Workers

  defp writer(ns, w, deadline), do: writer(ns, w, deadline, 0, %{acked: [], errors: 0, exits: 0})

  defp writer(ns, w, deadline, i, acc) do
    if now() >= deadline do
      acc
    else
      cid = "chaos-#{w}-#{rem(i, 16)}"
      event = Event.new(event_type: :chaos, correlation_id: cid, data: %{w: w, i: i})

      acc =
        case Chaos.attempt(fn -> EventStore.store(event, namespace: ns) end) do
          {:ok, {:ok, id}} -> %{acc | acked: [{id, cid} | acc.acked]}
          {:error, _} -> %{acc | errors: acc.errors + 1}
          {:exit, _} -> %{acc | exits: acc.exits + 1}
        end

      # Paced so a long run's store stays a few hundred MB.
      Process.sleep(1)
      writer(ns, w, deadline, i + 1, acc)
    end
  end

  # Retries each value until acknowledged, so the last value attempted is the
  # last acknowledged one unless the deadline cut a retry short (`pending`).
  defp updater(ns, path, gen, deadline) do
    updater(ns, path, gen, deadline, 1, %{
      path: path,
      acked: nil,
      pending: nil,
      errors: 0,
      exits: 0,
      ok: 0
    })
  end

  defp updater(ns, path, gen, deadline, i, acc) do
    if now() >= deadline do
      acc
    else
      value = gen.(rem(i, 1_000))

      case Chaos.attempt(fn -> ConfigServer.update(path, value, namespace: ns) end) do
        {:ok, :ok} ->
          updater(ns, path, gen, deadline, i + 1, %{
            acc
            | acked: value,
              pending: nil,
              ok: acc.ok + 1
          })

        {kind, _} ->
          Process.sleep(1)
          key = if kind == :exit, do: :exits, else: :errors
          acc = %{acc | pending: value} |> Map.update!(key, &(&1 + 1))
          updater(ns, path, gen, deadline, i, acc)
      end
    end
  end

  defp emitter(ns, deadline), do: emitter(ns, deadline, %{calls: 0, errors: 0, exits: 0})

  defp emitter(ns, deadline, acc) do
    if now() >= deadline do
      acc
    else
      :ok = TelemetryService.emit_counter([:chaos, :counter], 1, %{}, namespace: ns)
      :ok = TelemetryService.execute([:chaos, :exec], %{value: 1}, %{}, namespace: ns)
      :ok = TelemetryService.emit_gauge([:chaos, :gauge], 5, %{}, namespace: ns)
      acc = %{acc | calls: acc.calls + 3}

      acc =
        case Chaos.attempt(fn -> TelemetryService.get_metrics(namespace: ns) end) do
          {:ok, {:ok, _}} -> acc
          {:error, _} -> %{acc | errors: acc.errors + 1}
          {:exit, _} -> %{acc | exits: acc.exits + 1}
        end

      emitter(ns, deadline, acc)
    end
  end

  defp reader(ns, r, deadline), do: reader(ns, r, deadline, %{calls: 0, errors: 0, exits: 0})

  defp reader(ns, r, deadline, acc) do
    if now() >= deadline do
      acc
    else
      calls = [
        fn -> EventStore.query(%{event_type: :chaos, limit: 20}, namespace: ns) end,
        fn -> EventStore.get_by_correlation("chaos-#{r}-3", namespace: ns) end,
        fn -> EventStore.stats(namespace: ns) end,
        fn -> ConfigServer.get([:interface, :max_results], namespace: ns) end,
        fn -> ConfigServer.status(namespace: ns) end,
        fn -> TelemetryService.status(namespace: ns) end,
        fn -> ServiceRegistry.lookup(ns, Enum.random(Chaos.workers())) end
      ]

      acc =
        Enum.reduce(calls, acc, fn call, acc ->
          case Chaos.attempt(call) do
            {:ok, _} -> %{acc | calls: acc.calls + 1}
            {:error, _} -> %{acc | calls: acc.calls + 1, errors: acc.errors + 1}
            {:exit, _} -> %{acc | calls: acc.calls + 1, exits: acc.exits + 1}
          end
        end)

      Process.sleep(1)
      reader(ns, r, deadline, acc)
    end
  end

  ## Invariants

  defp assert_recovered(ns) do
    for name <- Chaos.services() ++ Chaos.workers() do
      assert Eventually.eventually(
               fn -> match?({:ok, _}, ServiceRegistry.health_check(ns, name)) end,
               5_000
             ),
             "#{name} not healthy again: #{inspect(ServiceRegistry.health_check(ns, name))}"
    end

    assert {:ok, %{status: :running}} = ConfigServer.status(namespace: ns)
    assert {:ok, %{status: :running}} = EventStore.status(namespace: ns)
    assert {:ok, %{status: :running}} = TelemetryService.status(namespace: ns)
  end

  defp assert_no_lost_event(ns, writes) do
    acked = Enum.flat_map(writes, & &1.acked)
    assert acked != []

    lost =
      Enum.reject(acked, fn {id, _} ->
        match?({:ok, %Event{event_id: ^id}}, EventStore.get(id, namespace: ns))
      end)

    assert lost == [], "#{length(lost)} of #{length(acked)} acknowledged events lost"

    for {cid, entries} <- Enum.group_by(acked, &elem(&1, 1), &elem(&1, 0)) do
      {:ok, group} = EventStore.get_by_correlation(cid, namespace: ns)
      missing = entries -- Enum.map(group, & &1.event_id)
      assert missing == [], "#{length(missing)} events missing from correlation group #{cid}"
    end
  end

  defp assert_config(ns, updates) do
    for %{path: path, acked: acked, pending: pending} <- updates do
      assert acked != nil, "no update of #{inspect(path)} was ever acknowledged"
      {:ok, value} = ConfigServer.get(path, namespace: ns)

      assert value == acked or (pending != nil and value == pending),
             "#{inspect(path)} is #{inspect(value)}, last acknowledged #{inspect(acked)}"
    end
  end

  # Process and ETS counts come back to what they were before the cluster
  # started; BEAM memory and RSS within loose bounds.
  defp assert_no_leak(before) do
    back? = fn ->
      s = Chaos.snapshot()

      s.processes <= before.processes and s.ets <= before.ets and
        s.threads <= before.threads and s.backup_rows <= before.backup_rows
    end

    # A normally stopped store closes at once (worker thread joined), so the
    # counts come back within ms; the wait is for the last exits.
    t0 = System.monotonic_time(:millisecond)
    settled = Eventually.eventually(back?, 30_000)
    after_ = Map.put(Chaos.snapshot(), :settle_ms, System.monotonic_time(:millisecond) - t0)
    assert settled, "leak: before #{inspect(before)}, after #{inspect(after_)}"

    # Memory of replaced :persistent_term values (the handles of killed
    # services) comes back only once the VM has released their
    # literal areas: wait for it, then check the bound.
    memory_back? = fn -> Chaos.snapshot().memory - before.memory < 8 * 1_048_576 end
    memory_settled? = Eventually.eventually(memory_back?, 30_000)

    after_ =
      Map.merge(Chaos.snapshot(), %{
        settle_ms: after_.settle_ms,
        memory_settle_ms: System.monotonic_time(:millisecond) - t0
      })

    assert memory_settled?,
           "BEAM memory grew: before #{inspect(before)}, after #{inspect(after_)}"

    assert after_.rss - before.rss < 256 * 1_048_576
    after_
  end

  defp settle_snapshot do
    Process.sleep(100)
    Chaos.snapshot()
  end

  defp counts(kills, writes, updates, emits, reads) do
    sum = fn list, key -> list |> Enum.map(&Map.fetch!(&1, key)) |> Enum.sum() end

    %{
      kills: kills,
      kills_total: kills |> Map.values() |> Enum.sum(),
      events_acknowledged: writes |> Enum.map(&length(&1.acked)) |> Enum.sum(),
      events_lost: 0,
      store_errors: sum.(writes, :errors),
      store_exits: sum.(writes, :exits),
      config_updates_acknowledged: sum.(updates, :ok),
      config_errors: sum.(updates, :errors),
      config_exits: sum.(updates, :exits),
      telemetry_calls: sum.(emits, :calls),
      telemetry_errors: sum.(emits, :errors),
      telemetry_exits: sum.(emits, :exits),
      read_calls: sum.(reads, :calls),
      read_errors: sum.(reads, :errors),
      read_exits: sum.(reads, :exits)
    }
  end

  defp now, do: System.monotonic_time(:millisecond)
end
