Code.require_file("../../test/support/validation_reference.ex", __DIR__)

defmodule Bench.Reference do
  @moduledoc """
  Reference services following the ORIGINAL design, for comparison in the
  same run, doing the original's per-call work:

    * every public call looks its server up (`Registry.lookup/2`, an alive
      check and a `:telemetry`-style lookup event: an ETS lookup of the
      event's handlers, as `:telemetry.execute/3` does when none is attached),
      then makes a `GenServer.call`;
    * config reads are served by the config server from its state;
    * an update runs `put_in/3` on the config (the `Access` implementation of
      `Types.Config`) and validates the whole config in pure Elixir
      (`test/support/validation_reference.ex`), then checks the store is available,
      builds the audit event (fresh id, timestamps, pure-Elixir event
      validation) and stores it with a synchronous `GenServer.call` into a
      map-based store process (which validates it again, stores it in its
      map and casts its own counter), checks the telemetry service is
      available and casts the update counter;
    * each metric is a `cast` into one process that folds it into a map.

  Each server registers under `{:production, service}` in
  `Bench.Reference.Registry` (started on first use).
  """

  alias ElixirScope.Foundation.Test.ValidationReference, as: Validation

  @registry Bench.Reference.Registry
  @handlers :bench_reference_telemetry_handlers

  @doc false
  def ensure_registry do
    if Process.whereis(@registry) == nil do
      {:ok, pid} = Registry.start_link(keys: :unique, name: @registry)
      Process.unlink(pid)
      :ets.new(@handlers, [:named_table, :public, :set, read_concurrency: true])
    end

    :ok
  end

  @doc false
  def register(service) do
    ensure_registry()
    _ = Registry.register(@registry, {:production, service}, nil)
    :ok
  end

  @doc "The original's `ServiceRegistry.lookup/2`: registry, alive check, lookup event."
  def lookup(service) do
    start = System.monotonic_time()

    result =
      case Registry.lookup(@registry, {:production, service}) do
        [{pid, _}] -> if Process.alive?(pid), do: {:ok, pid}, else: :error
        [] -> :error
      end

    telemetry(
      [:elixir_scope, :foundation, :registry, :lookup],
      %{duration: System.monotonic_time() - start},
      %{namespace: :production, service: service, result: elem_ok(result)}
    )

    result
  end

  defp elem_ok({:ok, _}), do: :ok
  defp elem_ok(:error), do: :error

  # What `:telemetry.execute/3` does with no handler attached: one ETS lookup.
  defp telemetry(name, measurements, metadata) do
    for {_, fun} <- :ets.lookup(@handlers, name), do: fun.(name, measurements, metadata)
    :ok
  end

  @doc false
  def emit_counter(name, metadata) do
    case lookup(:telemetry_service) do
      {:ok, pid} -> GenServer.cast(pid, {:execute_event, name, %{counter: 1}, metadata})
      :error -> :ok
    end
  end

  @doc false
  def new_event(type, data) do
    event = %ElixirScope.Foundation.Types.Event{
      event_id: ElixirScope.Foundation.Utils.generate_id(),
      event_type: type,
      timestamp: System.monotonic_time(:millisecond),
      wall_time: DateTime.utc_now(),
      node: Node.self(),
      pid: self(),
      data: data
    }

    case Validation.validate_event(event) do
      :ok -> {:ok, event}
      error -> error
    end
  end

  defmodule Store do
    @moduledoc false
    use GenServer
    alias Bench.Reference

    def start, do: GenServer.start(__MODULE__, %{})

    def store(event) do
      case Reference.lookup(:event_store) do
        {:ok, pid} -> GenServer.call(pid, {:store_event, event})
        :error -> {:error, :unavailable}
      end
    end

    def init(_) do
      Reference.register(:event_store)
      {:ok, %{events: %{}, next_id: 1, stored: 0}}
    end

    def handle_call({:store_event, event}, _from, state) do
      case Validation.validate_event(event) do
        :ok ->
          id = event.event_id

          Reference.emit_counter([:foundation, :event_store, :events_stored], %{
            event_type: event.event_type
          })

          {:reply, {:ok, id},
           %{
             state
             | events: Map.put(state.events, id, event),
               next_id: max(state.next_id, id) + 1,
               stored: state.stored + 1
           }}

        error ->
          {:reply, error, state}
      end
    end
  end

  defmodule ConfigServer do
    @moduledoc false
    use GenServer
    alias Bench.Reference
    alias ElixirScope.Foundation.Logic.ConfigLogic

    @updatable ConfigLogic.updatable_paths()

    def start(_store \\ nil), do: GenServer.start(__MODULE__, nil)

    # The pid argument is kept for the callers' convenience; as in the
    # original, every call looks the server up first.
    def get(_pid, path), do: call({:get_config_path, path})
    def update(_pid, path, value), do: call({:update_config, path, value})

    defp call(message) do
      case Reference.lookup(:config_server) do
        {:ok, pid} -> GenServer.call(pid, message)
        :error -> {:error, :unavailable}
      end
    end

    def init(_) do
      Reference.register(:config_server)
      {:ok, config} = ConfigLogic.build_config([])
      {:ok, %{config: config, subscribers: [], updates: 0}}
    end

    def handle_call({:get_config_path, path}, _from, state),
      do: {:reply, ConfigLogic.get_config_value(state.config, path), state}

    def handle_call({:update_config, path, value}, _from, state) do
      with true <- path in @updatable,
           new_config = put_in(state.config, path, value),
           :ok <- Validation.validate_config(new_config) do
        previous = ConfigLogic.get_config_value(state.config, path)

        for pid <- state.subscribers,
            do: send(pid, {:config_notification, {:config_updated, path, value}})

        if match?({:ok, _}, Reference.lookup(:event_store)) do
          data = %{
            path: path,
            new_value: value,
            previous_value: previous,
            timestamp: System.monotonic_time(:millisecond)
          }

          {:ok, event} = Reference.new_event(:config_updated, data)
          {:ok, _} = Reference.Store.store(event)
        end

        if match?({:ok, _}, Reference.lookup(:telemetry_service)),
          do: Reference.emit_counter([:foundation, :config_updates], %{path: path})

        {:reply, :ok, %{state | config: new_config, updates: state.updates + 1}}
      else
        _ -> {:reply, {:error, :invalid}, state}
      end
    end
  end

  defmodule Telemetry do
    @moduledoc false
    use GenServer
    alias Bench.Reference

    def start, do: GenServer.start(__MODULE__, %{})

    def emit_counter(pid, name, metadata),
      do: GenServer.cast(pid, {:execute_event, name, %{counter: 1}, metadata})

    def get_metrics(pid), do: GenServer.call(pid, :get_metrics, :infinity)

    def init(state) do
      Reference.register(:telemetry_service)
      {:ok, state}
    end

    def handle_cast({:execute_event, name, measurements, metadata}, metrics) do
      entry =
        case metrics do
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

      {:noreply, Map.put(metrics, name, entry)}
    end

    def handle_call(:get_metrics, _from, metrics), do: {:reply, {:ok, metrics}, metrics}
  end
end
