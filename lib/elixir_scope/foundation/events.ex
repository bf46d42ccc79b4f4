defmodule ElixirScope.Foundation.Events do
  @moduledoc """
  Public API for events: building events (delegated to
  `ElixirScope.Foundation.Logic.EventLogic`), serialization, and storage and
  queries (delegated to `ElixirScope.Foundation.Services.EventStore`, which
  calls the Rust store from the caller's process).

  Events made here carry millisecond monotonic timestamps and keep a
  caller-supplied `:event_id`. Store errors are
  `%ElixirScope.Foundation.Types.Error{}` with codes 3000 (unavailable),
  3001 (not found) and 3002 (reset forbidden).

  ## Namespaces

  Every function that reaches the store also takes a trailing `opts`
  keyword list with `namespace:` (`store(event, opts)`, `query(query,
  opts)`, `status(opts)`, ...). Without it, the namespace is the caller's
  sandbox (`ElixirScope.Foundation.Sandbox`), else `:production`. The
  event-building functions (`new_event/3`, `serialize/1`, ...) touch no
  service and take no namespace.

  ## Differences from the original

    * `available?/0` is true when the event store runs (the original looked
      up a name that is never registered and was always false).
    * `get_recent/1` returns the **newest** events, newest first (the
      original sorted ascending and took the first `limit`: the oldest).
  """
  @behaviour ElixirScope.Foundation.Contracts.EventStore

  alias ElixirScope.Foundation.{Cluster, EventArg}
  alias ElixirScope.Foundation.Logic.EventLogic
  alias ElixirScope.Foundation.Services.EventStore
  alias ElixirScope.Foundation.Types.{Error, Event}

  @typedoc "`{:ok, event}` or an error."
  @type event_result :: {:ok, Event.t()} | {:error, Error.t()}
  @typedoc "Options of the store functions (`namespace:`)."
  @type opts :: EventStore.opts()

  @doc "Starts the event store if it is not running; `opts` may name the `namespace:`."
  @impl true
  @spec initialize(opts()) :: :ok | {:error, Error.t()}
  def initialize(opts \\ []), do: EventStore.initialize(opts)

  @doc "Status of the event store: `{:ok, %{status: :running, ...}}`; `opts` may name the `namespace:`."
  @impl true
  @spec status(opts()) :: {:ok, map()} | {:error, Error.t()}
  def status(opts \\ []), do: EventStore.status(opts)

  @doc "True when the event store service runs; `opts` may name the `namespace:`."
  @impl true
  @spec available?(opts()) :: boolean()
  def available?(opts \\ []), do: EventStore.available?(opts)

  @doc """
  Builds a validated event (`EventLogic.create_event/3`): options
  `:event_id`, `:timestamp`, `:wall_time`, `:node`, `:pid`,
  `:correlation_id`, `:parent_id`.

      iex> {:ok, e} = ElixirScope.Foundation.Events.new_event(:test, %{a: 1}, event_id: 7)
      iex> {e.event_id, e.event_type, e.data}
      {7, :test, %{a: 1}}
  """
  @spec new_event(atom(), term(), keyword()) :: event_result()
  def new_event(event_type, data, opts \\ []),
    do: EventLogic.create_event(event_type, data, opts)

  @doc "Like `new_event/3` but returns the event or raises `RuntimeError`."
  @spec debug_new_event(atom(), term(), keyword()) :: Event.t()
  def debug_new_event(event_type, data, opts \\ []) do
    case new_event(event_type, data, opts) do
      {:ok, event} -> event
      {:error, _} -> raise "Failed to create debug event"
    end
  end

  @doc "A `:function_entry` event (`EventLogic.create_function_entry/5`)."
  @spec function_entry(module(), atom(), arity(), list(), keyword()) :: event_result()
  def function_entry(module, function, arity, args, opts \\ []),
    do: EventLogic.create_function_entry(module, function, arity, args, opts)

  @doc "A `:function_exit` event (`EventLogic.create_function_exit/7`)."
  @spec function_exit(module(), atom(), arity(), pos_integer(), term(), integer(), atom()) ::
          event_result()
  def function_exit(module, function, arity, call_id, result, duration_ns, exit_reason) do
    EventLogic.create_function_exit(
      module,
      function,
      arity,
      call_id,
      result,
      duration_ns,
      exit_reason
    )
  end

  @doc "A `:state_change` event (`EventLogic.create_state_change/5`)."
  @spec state_change(pid(), atom(), term(), term(), keyword()) :: event_result()
  def state_change(server_pid, callback, old_state, new_state, opts \\ []),
    do: EventLogic.create_state_change(server_pid, callback, old_state, new_state, opts)

  @doc "Compressed external term format of the event."
  @spec serialize(Event.t()) :: {:ok, binary()} | {:error, Error.t()}
  def serialize(event), do: EventLogic.serialize_event(EventArg.check!(event))

  @doc "Decodes and validates a serialized event (`:deserialization_failed` on garbage)."
  @spec deserialize(binary()) :: event_result()
  def deserialize(binary), do: EventLogic.deserialize_event(binary)

  @doc "Byte size of `serialize/1`'s output."
  @spec serialized_size(Event.t()) :: {:ok, non_neg_integer()} | {:error, Error.t()}
  def serialized_size(event),
    do: EventLogic.calculate_serialized_size(EventArg.check!(event))

  @doc "Stores an event; returns its id."
  @impl true
  @spec store(Event.t(), opts()) :: {:ok, pos_integer()} | {:error, Error.t()}
  def store(event, opts \\ []), do: EventStore.store(event, opts)

  @doc "Stores events atomically (all valid or none stored); ids in input order."
  @impl true
  @spec store_batch([Event.t()], opts()) :: {:ok, [pos_integer()]} | {:error, Error.t()}
  def store_batch(events, opts \\ []), do: EventStore.store_batch(events, opts)

  @doc "The event with `id` or a 3001 `:not_found` error."
  @impl true
  @spec get(pos_integer(), opts()) :: event_result()
  def get(id, opts \\ []), do: EventStore.get(id, opts)

  @doc """
  Runs a query (see `EventStore.query/2`). A keyword list is turned into a
  map (the last duplicate key wins); anything else raises
  `FunctionClauseError`.

  With `scope: :cluster` (and `timeout: ms`) the query runs on every node
  of the cluster and the answers are merged:
  `{:ok, events} | {:partial, events, failed}` (see
  `ElixirScope.Foundation.Cluster`).
  """
  @impl true
  @spec query(map() | keyword(), opts() | Cluster.opts()) ::
          {:ok, [Event.t()]} | {:partial, [Event.t()], Cluster.failed()} | {:error, Error.t()}
  def query(query, opts \\ [])
  def query(query, opts) when is_list(query), do: query(Map.new(query), opts)

  def query(query, opts) when is_map(query) do
    case Cluster.scope(opts) do
      :cluster -> Cluster.query(query, opts)
      {:local, opts} -> EventStore.query(query, opts)
      error -> error
    end
  end

  @doc """
  A lazy `Enumerable` of the events `query/2` would return, read page by
  page (see `ElixirScope.Foundation.Services.EventStore.stream/2`).
  `query` is a map or a keyword list, as for `query/2`; options:
  `namespace:` and `page_size:`.
  """
  @spec stream(map() | keyword(), keyword()) :: Enumerable.t()
  def stream(query \\ %{}, opts \\ [])
  def stream(query, opts) when is_list(query), do: stream(Map.new(query), opts)
  def stream(query, opts) when is_map(query), do: EventStore.stream(query, opts)

  @doc """
  Subscribes the calling process to newly stored events matching `filter`
  (`:event_type`, `:correlation_id`; `%{}` matches all). Events arrive as
  `{:foundation_events, ref, events}`; acknowledge them with `ack/2`.
  Options: `from: :now | :start`, `max_in_flight:`, `buffer:`,
  `namespace:`. See `ElixirScope.Foundation.Services.EventStore.subscribe/2`.
  """
  @spec subscribe(EventStore.filter() | keyword(), EventStore.subscribe_opts()) ::
          {:ok, reference()} | {:error, Error.t()}
  def subscribe(filter \\ %{}, opts \\ []), do: EventStore.subscribe(filter, opts)

  @doc "Acknowledges `count` delivered events of subscription `ref`."
  @spec ack(reference(), non_neg_integer()) :: :ok
  def ack(ref, count), do: EventStore.ack(ref, count)

  @doc "Ends subscription `ref`; idempotent."
  @spec unsubscribe(reference()) :: :ok
  def unsubscribe(ref), do: EventStore.unsubscribe(ref)

  @doc """
  Events with `correlation_id`, timestamp ascending. With
  `scope: :cluster` (and `timeout: ms`), those of every node, merged by
  system time (see `ElixirScope.Foundation.Cluster`).
  """
  @impl true
  @spec get_by_correlation(String.t(), opts() | Cluster.opts()) ::
          {:ok, [Event.t()]} | {:partial, [Event.t()], Cluster.failed()} | {:error, Error.t()}
  def get_by_correlation(correlation_id, opts \\ []) do
    case Cluster.scope(opts) do
      :cluster -> Cluster.get_by_correlation(correlation_id, opts)
      {:local, opts} -> EventStore.get_by_correlation(correlation_id, opts)
      error -> error
    end
  end

  @doc "Same as `get_by_correlation/1`, passed through `EventLogic.extract_correlation_chain/2`."
  @spec get_correlation_chain(String.t(), opts()) :: {:ok, [Event.t()]} | {:error, Error.t()}
  def get_correlation_chain(correlation_id, opts \\ []) do
    with {:ok, events} <- get_by_correlation(correlation_id, opts) do
      {:ok, EventLogic.extract_correlation_chain(events, correlation_id)}
    end
  end

  @doc "Events with `start <= timestamp <= stop`, timestamp ascending."
  @spec get_time_range(integer(), integer(), opts()) :: {:ok, [Event.t()]} | {:error, Error.t()}
  def get_time_range(start_time, end_time, opts \\ []),
    do: query(%{time_range: {start_time, end_time}, order_by: :timestamp}, opts)

  @doc "The `limit` newest events (by timestamp), newest first."
  @spec get_recent(non_neg_integer(), opts()) :: {:ok, [Event.t()]} | {:error, Error.t()}
  def get_recent(limit \\ 100, opts \\ []),
    do: query(%{order_by: :timestamp_desc, limit: limit}, opts)

  @doc "Deletes events with `timestamp < ts`; returns how many."
  @impl true
  @spec prune_before(integer(), opts()) :: {:ok, non_neg_integer()} | {:error, Error.t()}
  def prune_before(timestamp, opts \\ []), do: EventStore.prune_before(timestamp, opts)

  @doc "Store statistics (see `EventStore.stats/1`)."
  @impl true
  @spec stats(opts()) :: {:ok, map()} | {:error, Error.t()}
  def stats(opts \\ []), do: EventStore.stats(opts)
end
