defmodule Bench.Reference do
  @moduledoc """
  Reference services following the ORIGINAL design, for comparison in the
  same run: config reads are `GenServer.call`s, each metric is a `cast` into
  one process that folds it into a map (as the original TelemetryService),
  updates make a synchronous audit call into a store process.
  """

  defmodule Store do
    @moduledoc false
    use GenServer
    def start, do: GenServer.start(__MODULE__, %{})
    def init(state), do: {:ok, state}

    def handle_call({:store, event}, _from, state),
      do: {:reply, :ok, Map.put(state, map_size(state) + 1, event)}
  end

  defmodule ConfigServer do
    @moduledoc false
    use GenServer
    alias ElixirScope.Foundation.Logic.ConfigLogic

    def start(store), do: GenServer.start(__MODULE__, store)
    def get(pid, path), do: GenServer.call(pid, {:get_config_path, path})
    def update(pid, path, value), do: GenServer.call(pid, {:update_config, path, value})

    def init(store) do
      {:ok, config} = ConfigLogic.build_config([])
      {:ok, %{config: config, store: store}}
    end

    def handle_call({:get_config_path, path}, _from, state),
      do: {:reply, ConfigLogic.get_config_value(state.config, path), state}

    def handle_call({:update_config, path, value}, _from, state) do
      case ConfigLogic.update_config(state.config, path, value) do
        {:ok, config} ->
          # The original's synchronous audit call into the EventStore.
          GenServer.call(state.store, {:store, {:config_updated, path, value}})
          {:reply, :ok, %{state | config: config}}

        error ->
          {:reply, error, state}
      end
    end
  end

  defmodule Telemetry do
    @moduledoc false
    use GenServer
    def start, do: GenServer.start(__MODULE__, %{})

    def emit_counter(pid, name, metadata),
      do: GenServer.cast(pid, {:execute_event, name, %{counter: 1}, metadata})

    def get_metrics(pid), do: GenServer.call(pid, :get_metrics, :infinity)
    def init(state), do: {:ok, state}

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
