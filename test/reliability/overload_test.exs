defmodule ElixirScope.Foundation.Reliability.OverloadTest do
  # Floods far beyond what the consumers drain: memory stays bounded (bounded
  # queues, drops counted in stats/status), no service mailbox grows without
  # limit, callers are never blocked long, retention holds the event count.
  #
  # Default run: short versions (a few seconds). `mix test --only chaos`: the
  # long ones (1M events).
  use ExUnit.Case, async: false
  @moduletag :capture_log

  alias ElixirScope.Foundation.{ProcessRegistry, TestSupport.Chaos, TestSupport.Eventually}
  alias ElixirScope.Foundation.Services.{ConfigServer, EventStore, TelemetryService}
  alias ElixirScope.Foundation.Types.Event

  # 30 x 30 = 900 distinct metric names, beyond the max_metrics cap below.
  @name_atoms ~w(a b c d e f g h i j k l m n o p q r s t u v w x y z aa bb cc dd)a
  @max_metrics 500
  @queue 32
  @payload String.duplicate("x", 2_048)

  @tag :chaos_short
  test "short flood: bounded memory, mailboxes and latency; drops counted" do
    flood(per_flooder: 40_000, flooders: 1, updaters: 1, updates: 1_000)
  end

  @tag :chaos
  @tag timeout: 300_000
  test "long flood: bounded memory, mailboxes and latency; drops counted" do
    flood(per_flooder: 800_000, flooders: 1, updaters: 1, updates: 5_000)
  end

  @tag :chaos_short
  test "short retention: 100k events into max_events 10_000" do
    retention(100_000, 10_000)
  end

  @tag :chaos
  @tag timeout: 300_000
  test "long retention: 1M events into max_events 10_000" do
    retention(1_000_000, 10_000)
  end

  # Each accepted update rewrites the config's rows in ETS (and stores an
  # audit event): replaced rows are freed at once, nothing piles up.
  @tag :chaos
  @tag timeout: 300_000
  test "long config update flood: memory stays bounded" do
    ns = {:test, make_ref()}
    before = Chaos.snapshot()
    sup = Chaos.start_cluster(ns, [max_events: 10_000], enable_vm_metrics: false)
    on_exit(fn -> if Process.alive?(sup), do: Chaos.stop_cluster(sup) end)
    sampler = start_sampler(ns)

    results =
      for(i <- 1..16, do: Task.async(fn -> config_flood(ns, i, 2_500) end))
      |> Task.await_many(280_000)

    peak = stop_sampler(sampler)
    Chaos.stop_cluster(sup)
    updates = results |> Enum.map(& &1.calls) |> Enum.sum()

    IO.puts(
      "\nconfig flood #{updates} updates: BEAM memory #{Chaos.mb(before.memory)} -> " <>
        "peak #{Chaos.mb(peak.memory)} MB (system #{Chaos.mb(before.system)} MB before)"
    )

    assert peak.memory - before.memory < 64 * 1_048_576
  end

  ## Flood

  defp flood(opts) do
    ns = {:test, make_ref()}
    before = Chaos.snapshot()

    sup =
      Chaos.start_cluster(ns, [async_queue_size: @queue, max_events: 0, max_age_seconds: 0],
        max_metrics: @max_metrics,
        enable_vm_metrics: false
      )

    on_exit(fn -> if Process.alive?(sup), do: Chaos.stop_cluster(sup) end)
    {:ok, stats0} = EventStore.stats(namespace: ns)
    sampler = start_sampler(ns)
    n = opts[:per_flooder]

    probe =
      Task.async(fn -> probe(ns, %{kind: :probe, ok: 0, dropped: 0, calls: 0, max: %{}}) end)

    # The probe measures how long an ordinary caller (one call of each kind
    # per ms) is blocked while the flooders saturate the schedulers.
    tasks =
      for(i <- 1..opts[:flooders], do: Task.async(fn -> telemetry_flood(ns, i, n) end)) ++
        for(i <- 1..opts[:flooders], do: Task.async(fn -> async_flood(ns, i, n) end)) ++
        for i <- 1..opts[:updaters], do: Task.async(fn -> config_flood(ns, i, opts[:updates]) end)

    results = Task.await_many(tasks, 240_000)
    send(probe.pid, :stop)
    results = [Task.await(probe, 10_000) | results]
    peak = stop_sampler(sampler)

    assert Eventually.eventually(
             fn -> match?({:ok, %{async_queue_len: 0}}, EventStore.stats(namespace: ns)) end,
             5_000
           )

    report = check_flood(ns, stats0, results, peak, before)
    IO.puts("\nflood #{n}/flooder: #{inspect(report, limit: :infinity)}")
    Chaos.stop_cluster(sup)
  end

  # One call of each kind per round (a config update, a store_async, a
  # counter, a stats read), until told to stop; keeps the max per kind.
  defp probe(ns, acc) do
    receive do
      :stop -> acc
    after
      1 ->
        k = acc.calls
        event = Event.new(event_type: :probe, data: %{k: k})

        calls = [
          config: fn ->
            ConfigServer.update([:dev, :verbose_logging], rem(k, 2) == 0, namespace: ns)
          end,
          async: fn -> EventStore.store_async(event, namespace: ns) end,
          telemetry: fn -> TelemetryService.emit_counter([:probe], 1, %{}, namespace: ns) end,
          read: fn -> EventStore.stats(namespace: ns) end
        ]

        acc =
          Enum.reduce(calls, acc, fn {kind, call}, acc ->
            {result, us} = Chaos.timed(call)
            acc = %{acc | max: Map.update(acc.max, kind, us, &max(&1, us))}

            case {kind, result} do
              {:async, {:ok, :ok}} ->
                %{acc | ok: acc.ok + 1}

              {:async, {:error, %{error_type: :resource_exhausted}}} ->
                %{acc | dropped: acc.dropped + 1}

              {_, {:ok, _}} ->
                acc
            end
          end)

        probe(ns, %{acc | calls: k + 1})
    end
  end

  defp telemetry_flood(ns, i, n) do
    :rand.seed(:exsss, {i, 2, 3})
    names = List.to_tuple(@name_atoms)
    pick = fn -> elem(names, :rand.uniform(tuple_size(names)) - 1) end

    Enum.reduce(1..n, %{kind: :telemetry, calls: 0, max_us: 0}, fn k, acc ->
      name = [:flood, pick.(), pick.()]

      {result, us} =
        if rem(k, 2) == 0,
          do:
            Chaos.timed(fn -> TelemetryService.emit_counter(name, 1, %{k: k}, namespace: ns) end),
          else: Chaos.timed(fn -> TelemetryService.execute(name, %{v: k}, %{}, namespace: ns) end)

      {:ok, :ok} = result
      %{acc | calls: acc.calls + 1, max_us: max(acc.max_us, us)}
    end)
  end

  defp async_flood(ns, i, n) do
    Enum.reduce(1..n, %{kind: :async, calls: 0, ok: 0, dropped: 0, max_us: 0}, fn k, acc ->
      event = Event.new(event_type: :flood, data: %{i: i, k: k, payload: @payload})
      {result, us} = Chaos.timed(fn -> EventStore.store_async(event, namespace: ns) end)
      acc = %{acc | calls: acc.calls + 1, max_us: max(acc.max_us, us)}

      case result do
        {:ok, :ok} -> %{acc | ok: acc.ok + 1}
        {:error, %{error_type: :resource_exhausted}} -> %{acc | dropped: acc.dropped + 1}
      end
    end)
  end

  defp config_flood(ns, i, n) do
    path = Enum.at([[:interface, :max_results], [:interface, :query_timeout]], rem(i, 2))

    Enum.reduce(1..n, %{kind: :config, calls: 0, max_us: 0}, fn k, acc ->
      {result, us} = Chaos.timed(fn -> ConfigServer.update(path, 1_000 + k, namespace: ns) end)
      {:ok, :ok} = result
      %{acc | calls: acc.calls + 1, max_us: max(acc.max_us, us)}
    end)
  end

  defp check_flood(ns, stats0, results, peak, before) do
    {[probe], results} = Enum.split_with(results, &(&1.kind == :probe))
    by_kind = Enum.group_by(results, & &1.kind)
    sum = fn kind, key -> by_kind |> Map.get(kind, []) |> Enum.map(& &1[key]) |> Enum.sum() end
    {:ok, stats} = EventStore.stats(namespace: ns)
    {:ok, config} = ConfigServer.status(namespace: ns)
    {:ok, telemetry} = TelemetryService.status(namespace: ns)

    # The async queue was overrun, and every refused event is counted.
    dropped = sum.(:async, :dropped) + probe.dropped
    assert dropped > 0, "the flood never filled the #{@queue}-slot queue"
    assert stats.async_dropped - stats0.async_dropped == dropped
    # Audit events are written straight into the store, never queued.
    assert config.audit_failures == 0
    assert stats.async_failed == stats0.async_failed
    # Nothing accepted was lost: every :ok and every audit is stored.
    assert stats.current_event_count - stats0.current_event_count ==
             sum.(:async, :ok) + probe.ok + config.audit_sent

    assert peak.async_queue_len <= @queue

    # Metric names beyond the cap are dropped and counted.
    assert telemetry.metrics_count <= @max_metrics
    assert telemetry.metrics_dropped > 0

    # No mailbox grew with the flood (callers of the GenServers are few).
    assert Enum.all?(peak.mailbox, fn {_service, len} -> len <= 50 end), inspect(peak.mailbox)

    probe_ms = Map.new(probe.max, fn {k, us} -> {k, div(us, 1000)} end)

    by_kind_ms =
      Map.new(by_kind, fn {k, rs} -> {k, div(Enum.max(Enum.map(rs, & &1.max_us)), 1000)} end)

    # < 1 s for every call (a config update waits for nothing but the
    # ConfigServer's own queue).
    for {kind, ms} <- Enum.concat(probe_ms, by_kind_ms) do
      assert ms < 1_000,
             "a #{kind} call was blocked #{ms} ms (probe #{inspect(probe_ms)}, flooders #{inspect(by_kind_ms)})"
    end

    assert peak.memory - before.memory < 256 * 1_048_576

    %{
      calls: results |> Enum.map(& &1.calls) |> Enum.sum(),
      async_ok: sum.(:async, :ok) + probe.ok,
      async_dropped: dropped,
      audit_sent: config.audit_sent,
      audit_failures: config.audit_failures,
      metrics_count: telemetry.metrics_count,
      metrics_dropped: telemetry.metrics_dropped,
      max_async_queue_len: peak.async_queue_len,
      max_mailbox: peak.mailbox,
      probe_calls: probe.calls,
      max_call_ms: probe_ms,
      flooders_max_call_ms: by_kind_ms,
      memory_mb: %{before: Chaos.mb(before.memory), peak: Chaos.mb(peak.memory)},
      rss_mb: %{before: Chaos.mb(before.rss), peak: Chaos.mb(peak.rss)}
    }
  end

  ## Retention

  defp retention(total, max_events) do
    ns = {:test, make_ref()}
    before = Chaos.snapshot()
    sup = Chaos.start_cluster(ns, max_events: max_events, max_age_seconds: 0)
    on_exit(fn -> if Process.alive?(sup), do: Chaos.stop_cluster(sup) end)
    sampler = start_sampler(ns)
    writers = 4
    per_writer = div(total, writers)

    tasks = for w <- 1..writers, do: Task.async(fn -> batch_writer(ns, w, per_writer) end)
    results = Task.await_many(tasks, 280_000)
    peak = stop_sampler(sampler)

    # The newest events are the ones kept, the oldest were evicted.
    %{first: newest} = batch_writer(ns, 0, 1_000)
    {:ok, stats} = EventStore.stats(namespace: ns)
    stored = writers * per_writer + 1_000
    assert stats.events_stored == stored
    assert stats.current_event_count == max_events
    assert stats.evicted_max_events == stored - max_events
    for id <- newest, do: assert({:ok, %Event{}} = EventStore.get(id, namespace: ns))

    for %{first: ids} <- results,
        id <- ids,
        do: assert({:error, %{error_type: :not_found}} = EventStore.get(id, namespace: ns))

    assert Enum.all?(peak.mailbox, fn {_service, len} -> len <= 50 end), inspect(peak.mailbox)
    # ~max_events events of a few hundred bytes, whatever the total stored.
    assert peak.rss - before.rss < 256 * 1_048_576

    max_ms = results |> Enum.map(& &1.max_us) |> Enum.max() |> div(1000)
    assert max_ms < 1_000, "a batch call was blocked #{max_ms} ms"

    IO.puts(
      "\nretention #{stored}: count #{stats.current_event_count}, evicted " <>
        "#{stats.evicted_max_events}, max batch call #{max_ms} ms, rss " <>
        "#{Chaos.mb(before.rss)} -> peak #{Chaos.mb(peak.rss)} MB"
    )

    Chaos.stop_cluster(sup)
  end

  # Stores `n` events in batches of 1000; returns the ids of its first batch.
  defp batch_writer(ns, w, n) do
    batches = div(n, 1000)

    Enum.reduce(1..batches, %{first: [], max_us: 0}, fn b, acc ->
      events =
        for k <- 1..1000,
            do:
              Event.new(
                event_type: :retention,
                correlation_id: "r-#{w}-#{rem(k, 8)}",
                data: %{b: b, k: k}
              )

      {{:ok, {:ok, ids}}, us} =
        Chaos.timed(fn -> EventStore.store_batch(events, namespace: ns) end)

      %{first: if(b == 1, do: ids, else: acc.first), max_us: max(acc.max_us, us)}
    end)
  end

  ## Sampler: peak mailbox of every service, memory, async queue

  defp start_sampler(ns) do
    parent = self()

    spawn_link(fn ->
      sample(ns, parent, %{mailbox: %{}, memory: 0, rss: 0, async_queue_len: 0})
    end)
  end

  defp stop_sampler(pid) do
    send(pid, :stop)

    receive do
      {:peak, ^pid, peak} -> peak
    after
      5_000 -> flunk("sampler did not answer")
    end
  end

  defp sample(ns, parent, peak) do
    receive do
      :stop -> send(parent, {:peak, self(), peak})
    after
      5 ->
        s = Chaos.snapshot_light()

        mailbox =
          for ns <- [ns, :production],
              name <- Chaos.services(),
              {:ok, pid} <- [ProcessRegistry.lookup(ns, name)],
              {:message_queue_len, len} <- [Process.info(pid, :message_queue_len)],
              reduce: peak.mailbox do
            acc -> Map.update(acc, {ns_tag(ns), name}, len, &max(&1, len))
          end

        queue =
          case EventStore.stats(namespace: ns) do
            {:ok, %{async_queue_len: q}} -> q
            _ -> 0
          end

        sample(ns, parent, %{
          mailbox: mailbox,
          memory: max(peak.memory, s.memory),
          rss: max(peak.rss, s.rss),
          async_queue_len: max(peak.async_queue_len, queue)
        })
    end
  end

  defp ns_tag(:production), do: :production
  defp ns_tag({:test, _}), do: :test
end
