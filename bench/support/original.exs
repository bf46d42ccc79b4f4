defmodule Bench.Original do
  @moduledoc """
  A model of the original pure-Elixir foundation, doing its per-call work,
  for comparisons in the same run:

    * every public call first looks its service up through the registry
      (`Registry.lookup/2`, the liveness check, and the `:telemetry`-style
      `[:elixir_scope, :foundation, :registry, :lookup]` event with its
      duration: a handler-table ETS lookup, as `:telemetry.execute/3` does),
      then makes a `GenServer.call` (or a `cast` for metrics);
    * the event store validates in the server with the pure-Elixir rules
      (`:erlang.external_size/1` for the data size), keeps a map, scans it
      for queries and correlation groups, and sends its telemetry counter
      (registry lookup + cast) from the server;
    * the config server validates the whole config in Elixir on every
      update and stores the audit event synchronously (lookup + call into
      the store) before it replies;
    * the telemetry server folds each cast into a map of entries.

  `start/0` starts one instance of each under fresh names; every function
  takes the returned map.
  """

  alias ElixirScope.Foundation.Logic.ConfigLogic
  alias ElixirScope.Foundation.Test.ValidationReference
  alias ElixirScope.Foundation.Types.Event

  @lookup_event [:elixir_scope, :foundation, :registry, :lookup]

  @doc "Starts the registry, handler table and the three services."
  def start do
    id = System.unique_integer([:positive])
    registry = :"bench_original_registry_#{id}"
    handlers = :ets.new(:bench_telemetry_handlers, [:set, :public, read_concurrency: true])

    {:ok, _} =
      Registry.start_link(
        keys: :unique,
        name: registry,
        partitions: System.schedulers_online()
      )

    ctx = %{registry: registry, handlers: handlers}
    {:ok, telemetry} = GenServer.start(__MODULE__.Telemetry, ctx)
    register(ctx, :telemetry_service, telemetry)
    {:ok, store} = GenServer.start(__MODULE__.Store, ctx)
    register(ctx, :event_store, store)
    {:ok, config} = GenServer.start(__MODULE__.Config, ctx)
    register(ctx, :config_server, config)
    ctx
  end

  defp register(ctx, service, pid) do
    # Registry keys belong to the registering process: register from inside.
    :ok = GenServer.call(pid, {:bench_register, ctx.registry, {:production, service}})
  end

  @doc "Stops the three services."
  def stop(ctx) do
    for service <- [:config_server, :event_store, :telemetry_service] do
      {:ok, pid} = lookup(ctx, service)
      GenServer.stop(pid)
    end

    :ok
  end

  @doc "The original ServiceRegistry.lookup/2: registry, liveness, telemetry event."
  def lookup(ctx, service) do
    start = System.monotonic_time()

    result =
      case Registry.lookup(ctx.registry, {:production, service}) do
        [{pid, _}] -> if Process.alive?(pid), do: {:ok, pid}, else: {:error, :not_found}
        [] -> {:error, :not_found}
      end

    duration = System.monotonic_time() - start
    outcome = if match?({:ok, _}, result), do: :ok, else: :error

    telemetry_execute(ctx, @lookup_event, %{duration: duration}, %{
      namespace: :production,
      service: service,
      result: outcome
    })

    result
  end

  # What `:telemetry.execute/3` does with no handler attached.
  defp telemetry_execute(ctx, event, measurements, metadata) do
    for {_, fun} <- :ets.lookup(ctx.handlers, event), do: fun.(event, measurements, metadata)
    :ok
  end

  defp call(ctx, service, message) do
    {:ok, pid} = lookup(ctx, service)
    GenServer.call(pid, message, :infinity)
  end

  # -- the public API of the model --------------------------------------------

  def store(ctx, event), do: call(ctx, :event_store, {:store_event, event})
  def store_batch(ctx, events), do: call(ctx, :event_store, {:store_batch, events})
  def get(ctx, id), do: call(ctx, :event_store, {:get_event, id})
  def query(ctx, q), do: call(ctx, :event_store, {:query_events, q})
  def get_by_correlation(ctx, cid), do: call(ctx, :event_store, {:get_by_correlation, cid})
  def prune_before(ctx, ts), do: call(ctx, :event_store, {:prune_before, ts})
  def stats(ctx), do: call(ctx, :event_store, :get_stats)
  def config_get(ctx, path), do: call(ctx, :config_server, {:get_config_path, path})

  def config_update(ctx, path, value),
    do: call(ctx, :config_server, {:update_config, path, value})

  def get_metrics(ctx), do: call(ctx, :telemetry_service, :get_metrics)

  def emit_counter(ctx, name, metadata) do
    case lookup(ctx, :telemetry_service) do
      {:ok, pid} -> GenServer.cast(pid, {:execute_event, name, %{counter: 1}, metadata})
      _ -> :ok
    end
  end

  defmodule Store do
    @moduledoc false
    use GenServer
    alias Bench.{Original, ReferenceEventStore}

    def init(ctx) do
      now = System.monotonic_time(:millisecond)

      {:ok,
       %{
         ctx: ctx,
         events: %{},
         next_id: 1,
         metrics: %{events_stored: 0, events_pruned: 0, start_time: now}
       }}
    end

    def handle_call({:bench_register, registry, key}, _from, state) do
      {:ok, _} = Registry.register(registry, key, nil)
      {:reply, :ok, state}
    end

    def handle_call({:store_event, event}, _from, state) do
      case ValidationReference.validate_event(event) do
        :ok ->
          id = event.event_id
          events = Map.put(state.events, id, event)

          metrics = %{state.metrics | events_stored: state.metrics.events_stored + 1}

          Original.emit_counter(state.ctx, [:foundation, :event_store, :events_stored], %{
            event_type: event.event_type,
            event_id: id
          })

          {:reply, {:ok, id},
           %{state | events: events, next_id: max(state.next_id, id) + 1, metrics: metrics}}

        error ->
          {:reply, error, state}
      end
    end

    def handle_call({:store_batch, events}, _from, state) do
      case Enum.find_value(events, &invalid(ValidationReference.validate_event(&1))) do
        nil ->
          {map, next_id} =
            Enum.reduce(events, {state.events, state.next_id}, fn e, {m, next} ->
              {Map.put(m, e.event_id, e), max(next, e.event_id) + 1}
            end)

          n = length(events)
          metrics = %{state.metrics | events_stored: state.metrics.events_stored + n}

          Original.emit_counter(state.ctx, [:foundation, :event_store, :events_stored], %{
            batch_size: n
          })

          ids = Enum.map(events, & &1.event_id)
          {:reply, {:ok, ids}, %{state | events: map, next_id: next_id, metrics: metrics}}

        error ->
          {:reply, error, state}
      end
    end

    def handle_call({:get_event, id}, _from, state) do
      case Map.fetch(state.events, id) do
        {:ok, e} -> {:reply, {:ok, e}, state}
        :error -> {:reply, {:error, :not_found}, state}
      end
    end

    def handle_call({:query_events, q}, _from, state),
      do: {:reply, {:ok, ReferenceEventStore.query_map(state.events, q)}, state}

    def handle_call({:get_by_correlation, cid}, _from, state),
      do: {:reply, {:ok, ReferenceEventStore.correlation(state.events, cid)}, state}

    def handle_call({:prune_before, ts}, _from, state) do
      {keep, pruned} =
        Enum.reduce(state.events, {%{}, 0}, fn {id, e}, {acc, n} ->
          if e.timestamp < ts, do: {acc, n + 1}, else: {Map.put(acc, id, e), n}
        end)

      metrics = %{state.metrics | events_pruned: state.metrics.events_pruned + pruned}
      {:reply, {:ok, pruned}, %{state | events: keep, metrics: metrics}}
    end

    def handle_call(:get_stats, _from, state) do
      now = System.monotonic_time(:millisecond)
      count = map_size(state.events)

      stats =
        Map.merge(state.metrics, %{
          current_event_count: count,
          uptime_ms: now - state.metrics.start_time,
          memory_usage_estimate: count * 1000
        })

      {:reply, {:ok, stats}, state}
    end

    defp invalid(:ok), do: nil
    defp invalid(error), do: error
  end

  defmodule Config do
    @moduledoc false
    use GenServer
    alias Bench.Original

    def init(ctx) do
      {:ok, config} = ConfigLogic.build_config([])

      {:ok, %{ctx: ctx, config: config, subscribers: [], updates: 0, last_update: nil, seq: 0}}
    end

    def handle_call({:bench_register, registry, key}, _from, state) do
      {:ok, _} = Registry.register(registry, key, nil)
      {:reply, :ok, state}
    end

    def handle_call({:get_config_path, path}, _from, state),
      do: {:reply, ConfigLogic.get_config_value(state.config, path), state}

    def handle_call({:update_config, path, value}, _from, state) do
      # The original's ConfigLogic.update_config/3: updatable-path check,
      # put_in, whole-config validation (pure Elixir).
      with true <- ConfigLogic.updatable_path?(path) || {:error, :not_updatable},
           new_config = put_in(state.config, path, value),
           :ok <- ValidationReference.validate_config(new_config) do
        Enum.each(
          state.subscribers,
          &send(&1, {:config_notification, {:config_updated, path, value}})
        )

        old = get_in(state.config, path)
        audit(state, path, value, old)

        Original.emit_counter(state.ctx, [:foundation, :config_updates], %{path: path})
        now = System.monotonic_time(:millisecond)
        {:reply, :ok, %{state | config: new_config, updates: state.updates + 1, last_update: now}}
      else
        error -> {:reply, error, state}
      end
    end

    # Events.new_event/2 in the server process, then a synchronous store.
    defp audit(state, path, value, old) do
      now = System.monotonic_time(:millisecond)

      event = %Event{
        event_id: System.unique_integer([:positive, :monotonic]),
        event_type: :config_updated,
        timestamp: now,
        wall_time: DateTime.utc_now(),
        node: Node.self(),
        pid: self(),
        correlation_id: nil,
        parent_id: nil,
        data: %{path: path, new_value: value, previous_value: {:ok, old}, timestamp: now}
      }

      Original.store(state.ctx, event)
    end
  end

  defmodule Telemetry do
    @moduledoc false
    use GenServer

    def init(ctx), do: {:ok, %{ctx: ctx, metrics: %{}, handlers: %{}}}

    def handle_call({:bench_register, registry, key}, _from, state) do
      {:ok, _} = Registry.register(registry, key, nil)
      {:reply, :ok, state}
    end

    def handle_call(:get_metrics, _from, state) do
      nested =
        Enum.reduce(state.metrics, %{}, fn {name, entry}, acc ->
          put_in(acc, Enum.map(name, &Access.key(&1, %{})), entry_view(name, entry))
        end)

      {:reply, {:ok, Map.put(nested, :retrieved_at, System.monotonic_time())}, state}
    end

    def handle_cast({:execute_event, name, measurements, metadata}, state) do
      entry =
        case state.metrics do
          %{^name => old} ->
            merged = Map.merge(old.measurements, measurements, fn _k, a, b -> a + b end)

            %{
              old
              | count: old.count + 1,
                measurements: merged,
                timestamp: System.monotonic_time()
            }

          _ ->
            %{
              count: 1,
              measurements: measurements,
              metadata: metadata,
              timestamp: System.monotonic_time()
            }
        end

      _handler = Map.get(state.handlers, name)
      {:noreply, %{state | metrics: Map.put(state.metrics, name, entry)}}
    end

    defp entry_view([:foundation | _], entry), do: entry.count
    defp entry_view(_name, entry), do: entry
  end
end
