defmodule Bench.ReferenceEventStore do
  @moduledoc """
  The original design, for comparison: one GenServer holding every event in
  a map, validating in `handle_call`, answering queries with full scans
  (`Map.values |> Enum.filter |> Enum.sort_by`).
  """
  use GenServer

  alias ElixirScope.Foundation.Validation.EventValidator

  def start, do: GenServer.start(__MODULE__, nil)
  def stop(pid), do: GenServer.stop(pid)
  def store(pid, event), do: GenServer.call(pid, {:store_event, event})
  def store_batch(pid, events), do: GenServer.call(pid, {:store_batch, events})
  def get(pid, id), do: GenServer.call(pid, {:get_event, id})
  def query(pid, q), do: GenServer.call(pid, {:query_events, q}, 60_000)
  def get_by_correlation(pid, cid), do: GenServer.call(pid, {:get_by_correlation, cid}, 60_000)
  def prune_before(pid, ts), do: GenServer.call(pid, {:prune_before, ts}, 60_000)

  @impl true
  def init(nil), do: {:ok, %{events: %{}, stored: 0, pruned: 0}}

  @impl true
  def handle_call({:store_event, event}, _from, state) do
    case EventValidator.validate(event) do
      :ok ->
        events = Map.put(state.events, event.event_id, event)
        {:reply, {:ok, event.event_id}, %{state | events: events, stored: state.stored + 1}}

      error ->
        {:reply, error, state}
    end
  end

  def handle_call({:store_batch, events}, _from, state) do
    case Enum.find(Enum.map(events, &EventValidator.validate/1), &(&1 != :ok)) do
      nil ->
        map = Enum.reduce(events, state.events, &Map.put(&2, &1.event_id, &1))
        {:reply, {:ok, Enum.map(events, & &1.event_id)}, %{state | events: map}}

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
    do: {:reply, {:ok, query_map(state.events, q)}, state}

  def handle_call({:get_by_correlation, cid}, _from, state),
    do: {:reply, {:ok, correlation(state.events, cid)}, state}

  def handle_call({:prune_before, ts}, _from, state) do
    {old, keep} = Enum.split_with(state.events, fn {_, e} -> e.timestamp < ts end)
    {:reply, {:ok, length(old)}, %{state | events: Map.new(keep)}}
  end

  @doc "The original's query over a map of events: full scan, filter, sort, drop, take."
  def query_map(events, q) do
    events
    |> Map.values()
    |> filter_type(q[:event_type])
    |> filter_range(q[:time_range])
    |> order(q[:order_by])
    |> offset(q[:offset])
    |> limit(q[:limit])
  end

  @doc "The original's correlation lookup over a map of events."
  def correlation(events, cid) do
    events
    |> Map.values()
    |> Enum.filter(&(&1.correlation_id == cid))
    |> Enum.sort_by(& &1.timestamp)
  end

  defp filter_type(events, nil), do: events
  defp filter_type(events, type), do: Enum.filter(events, &(&1.event_type == type))
  defp filter_range(events, nil), do: events

  defp filter_range(events, {a, b}),
    do: Enum.filter(events, &(&1.timestamp >= a and &1.timestamp <= b))

  defp order(events, :timestamp), do: Enum.sort_by(events, & &1.timestamp)
  defp order(events, :event_id), do: Enum.sort_by(events, & &1.event_id)
  defp order(events, _), do: events
  defp offset(events, n) when is_integer(n) and n >= 0, do: Enum.drop(events, n)
  defp offset(events, _), do: events
  defp limit(events, n) when is_integer(n) and n > 0, do: Enum.take(events, n)
  defp limit(events, _), do: events
end

defmodule Bench.RawEts do
  @moduledoc """
  Raw ETS used from the caller (no validation, no process): the BEAM's
  in-memory limit for store and get. Correlation and query are `select`
  scans (ETS has no secondary indexes).
  """

  def new do
    :ets.new(:raw_events, [:set, :public, read_concurrency: true, write_concurrency: true])
  end

  def store(t, e), do: :ets.insert(t, {e.event_id, e}) && {:ok, e.event_id}
  def store_batch(t, es), do: :ets.insert(t, Enum.map(es, &{&1.event_id, &1})) && {:ok, []}

  def get(t, id) do
    case :ets.lookup(t, id) do
      [{_, e}] -> {:ok, e}
      [] -> {:error, :not_found}
    end
  end

  def get_by_correlation(t, cid) do
    ms = [{{:_, %{correlation_id: cid}}, [], [{:element, 2, :"$_"}]}]
    {:ok, t |> :ets.select(ms) |> Enum.sort_by(& &1.timestamp)}
  end

  def query(t, %{event_type: type, time_range: {a, b}, limit: n}) do
    ms = [
      {{:_, %{event_type: type, timestamp: :"$1"}}, [{:>=, :"$1", a}, {:"=<", :"$1", b}],
       [{:element, 2, :"$_"}]}
    ]

    {:ok, t |> :ets.select(ms) |> Enum.sort_by(& &1.timestamp) |> Enum.take(n)}
  end

  def prune_before(t, ts) do
    {:ok, :ets.select_delete(t, [{{:_, %{timestamp: :"$1"}}, [{:<, :"$1", ts}], [true]}])}
  end

  def bytes(t), do: :ets.info(t, :memory) * :erlang.system_info(:wordsize)
end
