defmodule ElixirScope.Foundation.Services.EventStore do
  @moduledoc """
  The event store service, backed by the Rust store in
  `native/foundation_core/src/store`.

  The GenServer owns the store's lifecycle: it creates the store (a NIF
  resource) on start, publishes its handle (in `:persistent_term` under
  `{#{inspect(__MODULE__)}, :production}` for `:production`, in an ETS table
  owned by the registry's owner process for `{:test, ref}` namespaces, so
  creating or dropping a test namespace never touches `:persistent_term`),
  registers as
  `ProcessRegistry.via_tuple(namespace, :event_store)`, and expires old
  events every `prune_interval` ms. Reads and writes do **not** go through
  the process: `store/2`, `get/2`, `query/2`, ... look the handle up and call
  the NIF from the caller, so many processes work on the store at once.

  The handle outlives the process: if the GenServer is killed, the events
  stay, and the restarted process re-attaches to the same store. A normal
  stop (`stop/1`, supervisor shutdown) releases the store at once (its
  worker thread is joined, its events freed), so a later start begins
  empty, as in the original.

  Every public function also takes `opts` with `namespace:` to address an
  isolated instance; without it, the namespace is the caller's sandbox
  (`ElixirScope.Foundation.Sandbox`), else `:production`. The process
  still answers the original server messages (`{:store_event, event}`,
  `{:store_batch, events}`, `{:get_event, id}`, `{:query_events, query}`,
  `{:get_by_correlation, id}`, `{:prune_before, ts}`, `:get_stats`,
  `:get_status`, `:reset_state`) with the replies of the matching public
  function, acting on its own namespace's store.

  ## Storage format

  Each event is kept as its queryable fields (id, type, timestamp,
  correlation id) plus the whole event in the store's own binary term
  format (`native/foundation_nif/src/store_term.rs`): atoms and local pids
  are written as their VM term words (atoms are never garbage collected, so
  the word stays valid for the VM's life), `%Types.Event{}` and
  `%DateTime{}` as their values only, maps in key order, and anything else
  (refs, funs, ports, remote pids, bignums, bitstrings, improper lists, very
  deep nesting) as embedded external term format; an event of more than
  4096 terms is stored whole as external term format. Reading an event back
  therefore needs no atom lookup by name and no map sorting, which makes
  `get/2` and queries cheaper than decoding external term format
  (`docs/benchmarks.md`); every event still round-trips `==`. This form is only meaningful inside
  the VM that wrote it: external term format stays the durable form (the
  payload decoder also reads whole-event ETF payloads, tag 0), so a disk log
  would persist `:erlang.term_to_binary/1` of the decoded event.

  ## Subscriptions

  `subscribe/2` pushes each newly stored event that matches a filter to the
  subscribing process, with flow control (`ack/2`) and an optional catch-up
  over what is already stored. Matching and queueing run inside the store's
  write call (a filter index, a bounded buffer per subscription); a thread
  of the store sends the batches, so writers never wait for a subscriber.

  ## Warm storage

  With `storage.warm.enable` (the `:production` store) or a `warm:` start
  option (a `{:test, ref}` store), every event is also written to a
  directory on disk before `store/2` and `store_batch/2` return, and reads
  merge the memory and disk tiers; events then survive the VM. `stats/1`
  adds `warm_enabled`, `warm_events`, `warm_bytes`, `warm_evicted` and
  `warm_corrupt_records`. The promise, the settings and the measured costs
  are in `docs/warm-storage.md`; the tier is
  `native/foundation_core/src/store/warm`.

  ## Differences from the original

    * Queries without `:order_by` return ascending id while the store holds
      at most 32 events (as the original's small maps did) and time-index
      order (timestamp, then id) beyond, where the original's order was
      arbitrary: a `:limit` then costs O(log n + limit).
    * Storing an existing id overwrites it (as in the original), and the old version's
      index entries are removed.
    * Retention: `storage.hot.max_events` (oldest stored evicted first) and
      `max_age_seconds` (age since storing) are enforced; evictions appear in
      `stats/1` as `evicted_max_events` / `evicted_max_age`.
    * A malformed `:time_range`, `:offset` or `:limit` returns an
      `:invalid_input` error instead of crashing the server.
    * Ids beyond 64 bits cannot be stored (`:invalid_input`); `get/2` of such
      an id is `:not_found`.

  ## Telemetry

    * `[:foundation, :event_store, :events_stored]` through
      `TelemetryService.emit_counter/4`, to the TelemetryService of the
      store's own namespace (a `{:test, ref}` store never counts into
      `:production`): measurement `counter: 1` with metadata `%{event_type, event_id}` per
      store, `counter: n` with `%{batch_size: n}` per batch.
  """
  use GenServer
  @behaviour ElixirScope.Foundation.Contracts.EventStore

  alias ElixirScope.Foundation.{EventArg, Native, ProcessRegistry}
  alias ElixirScope.Foundation.Native.Route
  alias ElixirScope.Foundation.Services.EventStore.{Heap, ReadGate, Subscriptions, Support, Warm}
  alias ElixirScope.Foundation.Services.Lifecycle
  alias ElixirScope.Foundation.Services.TelemetryService.Recorder
  alias ElixirScope.Foundation.Types.{Error, Event}
  alias ElixirScope.Foundation.Validation.EventValidator

  # Estimated bytes per stored event (Rust heap + stored encoding) for the
  # memory figure of stats/1; bench/event_store.exs measures the real value.
  @bytes_per_event 540
  # Every key of `stats/1`; a tier-less store keeps the warm keys at zero.
  @stats_template Map.merge(
                    Map.new(
                      ~w(current_event_count events_stored events_pruned evicted_max_events
                         evicted_max_age async_dropped async_failed async_queue_len start_time
                         uptime_ms memory_usage_estimate)a,
                      &{&1, 0}
                    ),
                    Warm.zero_stats()
                  )
  # Results up to this many events (and 64 KiB of stored bytes, see
  # Native.Route) are decoded on a normal scheduler.
  @bounded 256
  # Events one query slice NIF call returns at most (`SLICE_ITEMS` in
  # native/foundation_nif/src/store_slice.rs).
  @slice_items 128
  # Events per store_put_batch NIF call: a chunk of small events stays well
  # within a normal scheduler's time slice, and few enough calls are made
  # that the per-call overhead does not dominate (figures in
  # docs/benchmarks.md); chunks over the byte budget go to
  # store_put_batch_dirty.
  @chunk 128

  @typedoc "Options every public function accepts."
  @type opts :: [namespace: ProcessRegistry.namespace()]

  ## Client API

  @doc "Validates and stores `event`; returns its own id. An existing id is overwritten."
  @impl ElixirScope.Foundation.Contracts.EventStore
  @spec store(Event.t(), opts()) :: {:ok, pos_integer()} | {:error, Error.t()}
  def store(event, opts \\ []) do
    _ = EventArg.check!(event)
    namespace = Support.namespace(opts)

    case tiers(namespace) do
      {:ok, handle, nil} -> put_counted(handle, event, namespace)
      {:ok, handle, warm} -> handle |> put_one(warm, event) |> emit_stored(event, namespace)
      error -> error
    end
  end

  @doc """
  Stores `events` in order and returns their ids in input order. All are
  validated first: one invalid event means nothing is stored.
  """
  @impl ElixirScope.Foundation.Contracts.EventStore
  @spec store_batch([Event.t()], opts()) :: {:ok, [pos_integer()]} | {:error, Error.t()}
  def store_batch(events, opts \\ []) do
    _ = EventArg.check_list!(events)
    namespace = Support.namespace(opts)

    with {:ok, handle, warm} <- tiers(namespace),
         {:ok, ids} <- put_batch(handle, warm, events) do
      n = length(ids)
      if n > 0, do: Support.emit_stored(n, %{batch_size: n}, namespace)
      {:ok, ids}
    end
  end

  @doc """
  Validates `event` and queues it; a worker thread stores it shortly after,
  so the caller never waits for the store. A full queue returns a
  `:resource_exhausted` error and is counted in `stats/1` as
  `async_dropped`. With a warm tier the event is stored before the call
  returns (a queued event would not be durable).
  """
  @spec store_async(Event.t(), opts()) :: :ok | {:error, Error.t()}
  def store_async(event, opts \\ []) do
    _ = EventArg.check!(event)
    namespace = Support.namespace(opts)

    with {:ok, handle, warm} <- tiers(namespace),
         :ok <- put_async(handle, warm, event) do
      meta = %{event_type: event.event_type, event_id: event.event_id}
      Support.emit_stored(1, meta, namespace)
      :ok
    end
  end

  @doc false
  # ConfigServer's audit path: stores an event straight into the namespace's
  # native store, in the caller, never through this GenServer. Works while
  # the process is suspended, dead or restarting, as long as the store's
  # handle is published; after a normal stop there is none (unavailable).
  # The caller records the `events_stored` counter itself. Validated in the
  # same NIF call, like store/2, unless the caller passes `valid: true` for
  # an event it built valid and small (a few terms, no big integer or
  # binary): that one is stored without another walk of its terms.
  @spec store_direct(Event.t(), keyword()) :: {:ok, pos_integer()} | {:error, Error.t()}
  def store_direct(%Event{} = event, opts) do
    case tiers(Support.namespace(opts)) do
      {:ok, handle, nil} ->
        if Keyword.get(opts, :valid, false),
          do: Support.native(Native.store_put_valid(handle, event)),
          else: put_one(handle, nil, event)

      {:ok, handle, warm} ->
        put_one(handle, warm, event)

      error ->
        error
    end
  end

  @doc "The event with `id`, or a `:not_found` error (code 3001)."
  @impl ElixirScope.Foundation.Contracts.EventStore
  @spec get(pos_integer(), opts()) :: {:ok, Event.t()} | {:error, Error.t()}
  def get(id, opts \\ []) when is_integer(id) and id > 0 do
    with {:ok, handle, warm} <- tiers(Support.namespace(opts)) do
      case id <= Support.u64_max() and
             Route.dirty(Native.store_get(handle, id), fn ->
               Native.store_get_dirty(handle, id)
             end) do
        %{} = event -> {:ok, event}
        {:error, _} = error -> Support.native(error)
        _ -> get_warm(warm, id)
      end
    end
  end

  @doc """
  Events matching `query`: `:event_type`, `:time_range` (`{start, stop}`,
  inclusive), `:order_by` (`:event_id` or `:timestamp` ascending, or, an
  addition, `:timestamp_desc` newest first), `:offset` (if >= 0), `:limit`
  (if > 0). Other keys are ignored. Without a known `:order_by`, results
  come by ascending id while the store holds at most 32 events, else by
  ascending timestamp (ties by id).
  """
  @impl ElixirScope.Foundation.Contracts.EventStore
  @spec query(map(), opts()) :: {:ok, [Event.t()]} | {:error, Error.t()}
  def query(query, opts \\ []) when is_map(query) do
    with {:ok, handle, warm} <- tiers(Support.namespace(opts)) do
      case Support.normalize_query(query) |> warm_query(warm, handle) do
        {:ok, {type, range, order, offset, limit}}
        when limit in 1..@bounded and offset <= @bounded ->
          bounded_query(handle, type, range, order, offset, limit)

        # Id order over a time window sorts the window: one dirty call.
        {:ok, {type, range, :event_id, offset, limit}} when range != nil ->
          Support.native(Native.store_query_dirty(handle, type, range, :event_id, offset, limit))

        {:ok, {type, range, order, offset, limit}} ->
          read_slices(
            &query_slice/1,
            {{handle, type, range, order}, nil, offset, limit},
            fn read -> query_left(handle, type, range, offset, limit, read) end
          )
          |> Support.native()

        :empty ->
          {:ok, []}

        {:warm, result} ->
          result

        {:error, _} = error ->
          error
      end
    end
  end

  @doc """
  A lazy stream of the events `query/2` would return (same keys, order,
  `:offset` and `:limit`), read page by page from a cursor, so at most one
  page is held at a time whatever the store holds. Options: `namespace:`,
  and `page_size:` (default `interface.max_results` of the config; at most
  128 events are read per NIF call). Every event present when the stream
  starts and not removed meanwhile appears exactly once; events stored
  meanwhile may or may not appear. With a warm tier the stream reads the
  disk tier (every acknowledged event) page by page: in time order, or by
  id when the query has no type and no range (a filtered query without
  `:order_by` comes in time order). `order_by: :event_id` with a
  `:time_range` (and, with a warm tier, with an `:event_type`) is read whole
  on first use.
  A malformed query raises `ArgumentError`.
  """
  @spec stream(map(), opts() | [page_size: pos_integer()]) :: Enumerable.t()
  def stream(query, opts \\ []) when is_map(query) do
    namespace = Support.namespace(opts)

    case {Support.normalize_query(query), tiers(namespace)} do
      {{:error, error}, _} ->
        raise ArgumentError, error.message

      {:empty, _} ->
        []

      {_, {:error, error}} ->
        raise ArgumentError, error.message

      {{:ok, {_type, range, :event_id, _offset, _limit}}, _} when range != nil ->
        whole(query, namespace)

      {{:ok, {type, range, order, offset, limit}}, {:ok, _handle, warm}} when warm != nil ->
        case warm_order(type, range, order) do
          nil ->
            whole(query, namespace)

          order ->
            page = page_size(opts, namespace)
            left = if limit == 0, do: :infinity, else: limit
            start = {warm, {type, Warm.sys_range(range), order}, nil, offset, left}
            Stream.resource(fn -> start end, &next_warm_page(&1, page), fn _ -> :ok end)
        end

      {{:ok, {type, range, order, offset, limit}}, {:ok, handle, nil}} ->
        page = page_size(opts, namespace)
        left = if limit == 0, do: :infinity, else: limit
        start = {handle, {type, range, order}, nil, offset, left}
        Stream.resource(fn -> start end, &next_page(&1, page), fn _ -> :ok end)
    end
  end

  # With a warm tier, a stream reads the disk tier, which holds every
  # acknowledged event: in time order, or by id when the query has no type
  # and no range (the tier has no index of a type's ids: such a query is
  # read whole). An unordered query promises no order, so a filtered one is
  # streamed in time order.
  defp warm_order(nil, nil, order) when order in [:unordered, :event_id], do: :event_id
  defp warm_order(_type, _range, :unordered), do: :timestamp
  defp warm_order(_type, _range, :event_id), do: nil
  defp warm_order(_type, _range, order), do: order

  defp next_warm_page(:halt, _page), do: {:halt, :halt}

  # The offset is read and dropped page by page; then pages of `page`
  # events until the limit or the end.
  defp next_warm_page({warm, {type, range, order} = q, cursor, skip, left}, page) do
    want =
      cond do
        skip > 0 -> min(skip, 4096)
        left == :infinity -> page
        true -> min(left, page)
      end

    case Native.warm_page(warm, type, range, order, cursor, want) do
      {:ok, {events, cursor, done}} ->
        {events, skip} = if skip > 0, do: {[], skip - length(events)}, else: {events, 0}
        left = if left == :infinity, do: :infinity, else: left - length(events)
        next = if done or left == 0, do: :halt, else: {warm, q, cursor, skip, left}
        {events, next}

      error ->
        raise ArgumentError, "event stream failed: #{inspect(Support.native(error))}"
    end
  end

  defp whole(query, namespace) do
    Stream.flat_map([query], fn q ->
      {:ok, events} = query(q, namespace: namespace)
      events
    end)
  end

  # `left` is what remains of the limit. A page asks for at most `page`
  # events; the NIF reports `done` once it returned what was asked, so a
  # full page continues from its cursor.
  defp next_page(:halt, _page), do: {:halt, :halt}

  defp next_page({handle, {type, range, order} = q, cursor, skip, left}, page) do
    take = if left == :infinity, do: page, else: min(left, page)
    normal = Native.store_query_slice(handle, type, range, order, cursor, skip, take)

    reply =
      Route.dirty(normal, fn ->
        Native.store_query_slice_dirty(handle, type, range, order, cursor, skip, take)
      end)

    case reply do
      {:ok, {done, order, cursor, skipped, events}} ->
        n = length(events)
        left = if left == :infinity, do: :infinity, else: left - n

        next =
          if not done or (n == take and left != 0),
            do: {handle, put_elem(q, 2, order), cursor, skip - skipped, left},
            else: :halt

        {events, next}

      error ->
        raise ArgumentError, "event stream failed: #{inspect(Support.native(error))}"
    end
  end

  defp page_size(opts, namespace) do
    size =
      case Keyword.fetch(opts, :page_size) do
        {:ok, n} when is_integer(n) and n > 0 ->
          n

        {:ok, other} ->
          raise ArgumentError, "page_size must be a positive integer, got: #{inspect(other)}"

        :error ->
          case ElixirScope.Foundation.Config.get([:interface, :max_results], namespace: namespace) do
            {:ok, n} when is_integer(n) and n > 0 -> n
            _ -> 1000
          end
      end

    min(size, @slice_items)
  end

  @typedoc "A subscription filter: every given key must equal the event's."
  @type filter :: %{optional(:event_type) => atom(), optional(:correlation_id) => String.t()}

  @typedoc "Options of `subscribe/2`."
  @type subscribe_opts :: [
          from: :now | :start,
          max_in_flight: pos_integer(),
          buffer: pos_integer(),
          namespace: ProcessRegistry.namespace()
        ]

  @doc """
  Subscribes the calling process to the events stored from now on that
  match `filter` (`%{}` matches every event; a keyword list works too).

  The subscriber receives `{:foundation_events, ref, events}` (one or more
  events, in the order the store accepted them), must `ack/2` what it has
  handled, and gets `{:foundation_events_dropped, ref, count}` before its
  next batch when its buffer overflowed. Options:

    * `:from` - `:now` (default) or `:start`: first every matching event
      already stored (in arrival order, read page by page; with a warm
      tier, every event on disk, in system-time order), then the live
      ones, with no gap and no duplicate between the two
    * `:max_in_flight` - delivered events not yet acknowledged, at most
      (default 1000)
    * `:buffer` - matching events waiting beyond that, at most (default
      10 000); when full, the oldest are dropped and counted
    * `:namespace` - the store to subscribe to

  Writers never wait for a subscriber. The subscription ends when the
  subscriber exits, on `unsubscribe/1`, or when the store stops normally
  (`{:foundation_subscription_ended, ref, :store_stopped}`); it survives a
  crash of this process. With `interface.enable_streaming` set to false it
  returns an `:operation_forbidden` error (code 3003).
  """
  @spec subscribe(filter() | keyword(), subscribe_opts()) ::
          {:ok, reference()} | {:error, Error.t()}
  def subscribe(filter \\ %{}, opts \\ []), do: Subscriptions.subscribe(filter, opts)

  @doc "Acknowledges `count` delivered events of subscription `ref`, freeing as many slots."
  @spec ack(reference(), non_neg_integer()) :: :ok
  def ack(ref, count) when is_reference(ref) and is_integer(count) and count >= 0,
    do: Subscriptions.ack(ref, count)

  @doc "Ends subscription `ref` (`:ok` if it has already ended)."
  @spec unsubscribe(reference()) :: :ok
  def unsubscribe(ref) when is_reference(ref), do: Subscriptions.unsubscribe(ref)

  @doc "Events with `correlation_id`, by ascending timestamp (ties by id)."
  @impl ElixirScope.Foundation.Contracts.EventStore
  @spec get_by_correlation(String.t(), opts()) :: {:ok, [Event.t()]} | {:error, Error.t()}
  def get_by_correlation(correlation_id, opts \\ []) when is_binary(correlation_id) do
    with {:ok, handle, warm} <- tiers(Support.namespace(opts)) do
      handle
      |> Native.store_get_by_correlation(correlation_id, @bounded)
      |> Route.dirty(fn ->
        read_slices(&correlation_slice/1, {handle, correlation_id, nil}, fn read ->
          with {:ok, len} <- Native.store_correlation_len(handle, correlation_id),
               do: {max(len - read, 0), true}
        end)
      end)
      |> Support.native()
      |> warm_correlation(warm, handle, correlation_id)
    end
  end

  @doc "Deletes events with `timestamp < ts`; returns how many."
  @impl ElixirScope.Foundation.Contracts.EventStore
  @spec prune_before(integer(), opts()) :: {:ok, non_neg_integer()} | {:error, Error.t()}
  def prune_before(ts, opts \\ []) when is_integer(ts) do
    with {:ok, handle, warm} <- tiers(Support.namespace(opts)) do
      handle
      |> prune_shards(Support.clamp(ts))
      |> warm_prune(warm, ts)
    end
  end

  # One shard per NIF call, on this process's own scheduler while the shard
  # is small enough (`:dirty` otherwise): a common prune pays no hand-off to
  # a dirty scheduler, and other processes run between shards.
  defp prune_shards(handle, ts) do
    Enum.reduce_while(0..(Native.store_shard_count(handle) - 1)//1, {:ok, 0}, fn i, {:ok, n} ->
      handle
      |> Native.store_prune_shard(ts, i)
      |> Route.dirty(fn -> Native.store_prune_shard_dirty(handle, ts, i) end)
      |> Support.native()
      |> case do
        {:ok, pruned} -> {:cont, {:ok, n + pruned}}
        error -> {:halt, error}
      end
    end)
  end

  @doc """
  `{:ok, %{events_stored, events_pruned, start_time, current_event_count,
  uptime_ms, memory_usage_estimate, evicted_max_events, evicted_max_age,
  async_dropped, async_failed, async_queue_len, warm_enabled, warm_events,
  warm_bytes, warm_evicted, warm_corrupt_records}}`. With a warm tier the
  event counts are those of the directory (they survive restarts).
  """
  @impl ElixirScope.Foundation.Contracts.EventStore
  @spec stats(opts()) :: {:ok, map()} | {:error, Error.t()}
  def stats(opts \\ []) do
    case Support.entry(opts) do
      %{handle: handle, start_time: start_time} = entry ->
        with {:ok, native} <- Support.native(Native.store_stats(handle)) do
          {:ok, stats_map(native, start_time, Map.get(entry, :warm))}
        end

      nil ->
        {:error, Support.unavailable()}
    end
  end

  # The NIF's counters in its fixed order, written into a map of every key
  # (one update of a literal map, no merges).
  defp stats_map(native, start_time, warm) do
    [
      current_event_count: count,
      events_stored: stored,
      events_pruned: pruned,
      evicted_max_events: evicted_count,
      evicted_max_age: evicted_age,
      async_dropped: async_dropped,
      async_failed: async_failed,
      async_queue_len: queue_len,
      max_id: _
    ] = native

    stats = %{
      @stats_template
      | current_event_count: count,
        events_stored: stored,
        events_pruned: pruned,
        evicted_max_events: evicted_count,
        evicted_max_age: evicted_age,
        async_dropped: async_dropped,
        async_failed: async_failed,
        async_queue_len: queue_len,
        start_time: start_time,
        uptime_ms: System.monotonic_time(:millisecond) - start_time,
        memory_usage_estimate: count * @bytes_per_event
    }

    if warm, do: Warm.stats(warm, stats), else: stats
  end

  @doc "`{:ok, %{status: :running, event_count, next_id}}`."
  @impl ElixirScope.Foundation.Contracts.EventStore
  @spec status(opts()) :: {:ok, map()} | {:error, Error.t()}
  def status(opts \\ []) do
    with {:ok, handle} <- handle(opts),
         {:ok, native} <- Support.native(Native.store_stats(handle)) do
      s = Map.new(native)
      {:ok, %{status: :running, event_count: s.current_event_count, next_id: s.max_id + 1}}
    end
  end

  @doc "True when the service is registered (and alive) in the namespace."
  @impl ElixirScope.Foundation.Contracts.EventStore
  @spec available?(opts()) :: boolean()
  def available?(opts \\ []), do: Support.registered?(Support.namespace(opts))

  @doc """
  Starts the service from the caller (linked, as in the original) unless it
  is already registered. Failure: a code-3000 error "Failed to initialize
  event store: ...".
  """
  @impl ElixirScope.Foundation.Contracts.EventStore
  @spec initialize(keyword()) :: :ok | {:error, Error.t()}
  def initialize(opts \\ []) do
    if available?(opts) do
      :ok
    else
      case start_link(opts) do
        {:ok, _pid} -> :ok
        {:error, {:already_started, _pid}} -> :ok
        {:error, reason} -> {:error, init_failed(reason)}
      end
    end
  end

  @doc """
  Empties the store and resets its counters, only when
  the `:test_mode` app env is true (else code 3002 `:operation_forbidden`).
  """
  @spec reset_state(opts()) :: :ok | {:error, Error.t()}
  def reset_state(opts \\ []) do
    with true <-
           Lifecycle.test_mode?() || {:error, Support.forbidden()},
         {:ok, handle} <- handle(opts),
         {:ok, :ok} <- Support.native(Native.store_clear(handle)),
         {:ok, :ok} <- Warm.clear(warm(opts)) do
      :ok
    end
  end

  use Lifecycle,
    service: :event_store,
    default_namespace: :sandbox,
    doc: """
    Starts the service. Options (unknown ones are ignored, as in the original):

      * `:namespace` - `:production` (default) or `{:test, ref}`
      * `:max_events` - retention count (default `storage.hot.max_events`; 0 = none)
      * `:max_age_seconds` - retention age (default `storage.hot.max_age_seconds`; 0 = none)
      * `:prune_interval` - ms between age sweeps (default `storage.hot.prune_interval`)
      * `:async_queue_size` - capacity of the `store_async/2` queue (default 10 000)
      * `:shards` - shard count of a new store (default four per scheduler, at
        most 64, rounded up to a power of two; see the shard figures in
        `docs/benchmarks.md`)
      * `:warm` - `[path: dir, max_size_mb: n, compression: :none | :gzip | :zstd]`:
        a warm (disk) tier for this store; `:production` otherwise reads
        `storage.warm` of the config (used when `enable` is true)
    """

  @doc "Stops the service of the namespace (releasing its store); `:ok` if not running."
  @spec stop(opts()) :: :ok
  def stop(opts \\ []), do: Lifecycle.stop(Support.namespace(opts), :event_store)

  ## Server

  @impl GenServer
  def init(opts) do
    Process.flag(:trap_exit, true)
    namespace = Keyword.fetch!(opts, :namespace)
    {max_events, max_age_ms, interval} = Support.limits(opts)

    handle =
      case Support.lookup(namespace) do
        %{handle: handle} ->
          Native.store_set_limits(handle, max_events, max_age_ms)
          handle

        nil ->
          create(namespace, opts, max_events, max_age_ms)
      end

    Process.send_after(self(), :expire, interval)
    ElixirScope.Foundation.Cluster.join(namespace, :event_store)
    state = %{namespace: namespace, handle: handle, interval: interval}
    {:ok, Subscriptions.init(state)}
  end

  @impl GenServer
  def handle_call(message, _from, %{namespace: ns} = state) do
    {:reply, dispatch(message, namespace: ns), state}
  end

  @impl GenServer
  def handle_info(:expire, state) do
    Native.store_expire(state.handle)
    Warm.log_corrupt(warm(namespace: state.namespace), state.namespace)
    Process.send_after(self(), :expire, state.interval)
    {:noreply, state}
  end

  def handle_info({:DOWN, mon, :process, _pid, _reason} = message, state) do
    case Subscriptions.down(state, mon) do
      nil -> handle_info({:other, message}, state)
      state -> {:noreply, state}
    end
  end

  def handle_info({:foundation_subscription_dropped, ref, count}, state) do
    Subscriptions.dropped(state, ref, count)
    {:noreply, state}
  end

  def handle_info(_message, state), do: {:noreply, state}

  @impl GenServer
  def handle_cast({:monitor_subscriber, pid, ref, id}, state),
    do: {:noreply, Subscriptions.monitor(state, pid, ref, id)}

  def handle_cast({:demonitor_subscriber, ref}, state),
    do: {:noreply, Subscriptions.demonitor(state, ref)}

  def handle_cast(_message, state), do: {:noreply, state}

  # A normal stop closes the store, then unpublishes the handle: its worker
  # thread is joined and its events freed now, not when the resource is
  # garbage collected; a warm tier is synced and closed (its files stay). A
  # caller that read the handle gets EventStore's unavailable error from
  # writes and an empty store from reads.
  # Abnormal exits keep both, so a restart resumes the same store.
  @impl GenServer
  def terminate(reason, %{namespace: namespace, handle: handle}) do
    if reason in [:normal, :shutdown] or match?({:shutdown, _}, reason) do
      # Closed before the entry is erased: after an erase, a dirty NIF
      # called with a term read from `:persistent_term` (a literal) crashed
      # the VM (OTP 25.2), so this process calls no NIF after it.
      Subscriptions.stopped(handle, namespace)
      Native.store_close(handle)
      Warm.close(warm(namespace: namespace))
      Support.unpublish(namespace)
    end

    :ok
  end

  ## Private

  defp dispatch({:store_event, event}, opts), do: store(event, opts)
  defp dispatch({:store_batch, events}, opts), do: store_batch(events, opts)
  defp dispatch({:get_event, id}, opts), do: get(id, opts)
  defp dispatch({:query_events, query}, opts), do: query(query, opts)
  defp dispatch({:get_by_correlation, cid}, opts), do: get_by_correlation(cid, opts)
  defp dispatch({:prune_before, ts}, opts), do: prune_before(ts, opts)
  defp dispatch(:get_stats, opts), do: stats(opts)
  defp dispatch(:get_status, opts), do: status(opts)
  defp dispatch(:reset_state, opts), do: reset_state(opts)

  defp create(namespace, opts, max_events, max_age_ms) do
    shards = Keyword.get(opts, :shards, default_shards())
    capacity = Keyword.get(opts, :async_queue_size, 10_000)
    {:ok, handle} = Native.store_new(shards, max_events, max_age_ms, capacity)
    warm = Warm.open(namespace, opts)
    # A from-start subscription's catch-up then reads the disk tier.
    if warm, do: Native.warm_attach(handle, warm)
    entry = %{handle: handle, start_time: System.monotonic_time(:millisecond), warm: warm}
    Support.publish(namespace, entry)
    handle
  end

  # Four shards a scheduler: writers on different schedulers then rarely
  # share a shard (each keeps to one shard for a run of nearby ids), while
  # reads that merge every shard stay cheap. Capped, since a query reads
  # every shard.
  defp default_shards, do: min(System.schedulers_online() * 4, 64)

  defp handle(opts) do
    case Support.entry(opts) do
      %{handle: handle} -> {:ok, handle}
      nil -> {:error, Support.unavailable()}
    end
  end

  # The hot store and the warm tier (or nil) of a resolved namespace, from
  # one lookup.
  defp tiers(namespace) do
    case Support.lookup(namespace) do
      %{handle: handle} = entry -> {:ok, handle, Map.get(entry, :warm)}
      nil -> {:error, Support.unavailable()}
    end
  end

  # Long answers are read slice by slice on normal schedulers (each call
  # well under 1 ms, resuming after the cursor of the previous one), so
  # other processes run between slices. A slice too big to decode on a
  # normal scheduler answers :dirty; its dirty twin returns the rest.
  # `read.(state)` reads one slice: `{:ok, {done, events, next_state}}`.
  # An answer of more than one slice is read at low priority (see
  # `at_low_priority/1`), by at most as many processes at once as
  # `ReadGate` allows (one scheduler fewer than the VM has, by default).
  # Once the first events of a long answer are in, `left.(read)` tells how
  # many events are left after the `read` ones (`{count, exact}`), and the
  # caller's heap is given room for them before the rest is read (see
  # `Heap`).
  defp read_slices(read, state, left) do
    case read.(state) do
      {:ok, {true, events, _state}} ->
        {:ok, events}

      {:ok, {false, events, state}} ->
        at_low_priority(fn -> long(read, state, left, events) end)

      error ->
        error
    end
  end

  # Skipping matches for an offset: no events yet.
  # (The turn is asked for once the heap has room: asked for before, its
  # message cost a collection of the heap the first slice had filled.)
  defp long(read, state, left, []), do: ReadGate.run(fn -> skip(read, state, left) end)

  defp long(read, state, left, events) do
    size = fn -> with {:error, _} <- left.(length(events)), do: {0, false} end

    Heap.with_room(events, size, fn room ->
      ReadGate.run(fn -> more_slices(read, state, room, [events]) end)
    end)
  end

  defp skip(read, state, left) do
    case read.(state) do
      {:ok, {true, events, _state}} -> {:ok, events}
      {:ok, {false, [], state}} -> skip(read, state, left)
      {:ok, {false, events, state}} -> long(read, state, left, events)
      error -> error
    end
  end

  # A process at normal priority reads a long answer at low priority:
  # between two slices, every runnable process of normal priority runs
  # first, so a long read delays them by at most the slice under way, not
  # by its own turns in the run queue. (Low-priority processes still get
  # their turns: the read is not starved, only ordered after the others.)
  # Other priorities are left alone, and readers at `:high` or `:max` do
  # not queue for a turn either (see `ReadGate`).
  defp at_low_priority(fun) do
    case Process.info(self(), :priority) do
      {:priority, :normal} ->
        Process.flag(:priority, :low)

        try do
          fun.()
        after
          Process.flag(:priority, :normal)
        end

      {:priority, urgent} when urgent in [:high, :max] ->
        ReadGate.unqueued(fun)

      _ ->
        fun.()
    end
  end

  defp more_slices(read, state, room, acc) do
    case read.(state) do
      {:ok, {true, events, _state}} ->
        {:ok, concat(acc, events)}

      {:ok, {false, events, state}} ->
        more_slices(read, state, Heap.read(room, length(events)), [events | acc])

      error ->
        error
    end
  end

  defp query_slice({{handle, type, range, order} = q, cursor, skip, take}) do
    handle
    |> Native.store_query_slice(type, range, order, cursor, skip, take)
    |> Route.dirty(fn ->
      last_slice(Native.store_query_slice_dirty(handle, type, range, order, cursor, skip, take))
    end)
    |> case do
      {:ok, {done, order, cursor, skipped, events}} ->
        take = if take == 0, do: 0, else: take - length(events)
        {:ok, {done, events, {put_elem(q, 3, order), cursor, skip - skipped, take}}}

      error ->
        error
    end
  end

  # Events a query has left after its first `read` results: what its
  # filters match past the offset, within the limit.
  defp query_left(handle, type, range, offset, limit, read) do
    with {:ok, {count, exact}} <- Native.store_match_count(handle, type, range) do
      left = max(count - offset - read, 0)
      if limit > 0, do: {min(left, limit - read), exact}, else: {left, exact}
    end
  end

  defp correlation_slice({handle, cid, cursor}) do
    handle
    |> Native.store_correlation_slice(cid, cursor)
    |> Route.dirty(fn -> last_slice(Native.store_correlation_slice_dirty(handle, cid, cursor)) end)
    |> case do
      {:ok, {done, cursor, events}} -> {:ok, {done, events, {handle, cid, cursor}}}
      error -> error
    end
  end

  # A dirty twin's slice ends the walk: it holds the rest of the answer.
  defp last_slice({:ok, {_done, order, cursor, skipped, events}}),
    do: {:ok, {true, order, cursor, skipped, events}}

  defp last_slice({:ok, {_done, cursor, events}}), do: {:ok, {true, cursor, events}}
  defp last_slice(error), do: error

  # Warm storage hooks: with a disk tier (`Warm`), writes go through it
  # first and reads merge both tiers; without one, the hot paths as they are.
  defp warm(opts) do
    case Support.entry(opts) do
      %{warm: warm} -> warm
      _ -> nil
    end
  end

  # No disk tier: the event and its `events_stored` count in one NIF call
  # while the namespace's telemetry handle is published; the count is
  # finished in Elixir when the NIF could not do it all (see
  # `Recorder.finish_count/5`).
  defp put_counted(handle, event, namespace) do
    case Recorder.entry(namespace) do
      {metrics, _owner} = entry ->
        case Native.store_put_counted(handle, event, metrics, Support.events_stored()) do
          {:ok, id} = stored ->
            Support.finish_stored(entry, :ok, event, id)
            stored

          {:ok, id, outcome} ->
            Support.finish_stored(entry, outcome, event, id)
            {:ok, id}

          put ->
            put |> put_declined(handle, event) |> emit_stored(event, namespace)
        end

      nil ->
        handle |> put_one(nil, event) |> emit_stored(event, namespace)
    end
  end

  defp emit_stored({:ok, id} = stored, event, namespace) do
    Support.emit_stored(1, %{event_type: event.event_type, event_id: id}, namespace)
    stored
  end

  defp emit_stored(error, _event, _namespace), do: error

  defp put_one(handle, nil, event) do
    case Native.store_put(handle, event) do
      {:ok, _id} = stored -> stored
      put -> put_declined(put, handle, event)
    end
  end

  defp put_one(handle, warm, event),
    do: Warm.put(handle, warm, event, fn -> EventValidator.validate(event) end)

  # A normal-scheduler put that stored nothing (`:invalid`, `:dirty` or an
  # error): exact validation, then the dirty twin.
  defp put_declined(put, handle, event),
    do: checked(put, [event], fn -> Native.store_put_dirty(handle, event) end)

  defp put_async(handle, nil, event) do
    put = Native.store_put_async(handle, event)

    case checked(put, [event], fn -> Native.store_put_async_dirty(handle, event) end) do
      {:ok, :ok} -> :ok
      error -> error
    end
  end

  # With a disk tier the write is synchronous: queued events would not be durable.
  defp put_async(handle, warm, event) do
    with {:ok, _id} <- put_one(handle, warm, event), do: :ok
  end

  defp get_warm(nil, id), do: {:error, Support.not_found(id)}

  defp get_warm(warm, id) do
    case Warm.get(warm, id) do
      nil -> {:error, Support.not_found(id)}
      found -> found
    end
  end

  # A query with a disk tier is answered here (tagged `:warm`); else the
  # normalized query goes on to the hot paths.
  # With a disk tier, a query without an order is answered by ascending id
  # (both tiers must agree on the order before their answers are merged).
  defp warm_query({:ok, {type, range, :unordered, offset, limit}}, warm, handle)
       when warm != nil,
       do: warm_query({:ok, {type, range, :event_id, offset, limit}}, warm, handle)

  defp warm_query({:ok, q}, warm, handle) when warm != nil do
    {type, range, order, _, _} = q

    hot = fn
      offset, limit when limit in 1..@bounded and offset <= @bounded ->
        bounded_query(handle, type, range, order, offset, limit)

      offset, limit ->
        Support.native(Native.store_query_dirty(handle, type, range, order, offset, limit))
    end

    {:warm, Warm.query(warm, q, hot, retired(handle))}
  end

  defp warm_query(normalized, _warm, _handle), do: normalized

  # A small limit bounds the count: normal scheduler (unless over the byte
  # budget); else dirty.
  defp bounded_query(handle, type, range, order, offset, limit) do
    handle
    |> Native.store_query(type, range, order, offset, limit)
    |> Route.dirty(fn -> Native.store_query_dirty(handle, type, range, order, offset, limit) end)
    |> Support.native()
  end

  defp warm_correlation(result, nil, _handle, _cid), do: result

  defp warm_correlation(result, warm, handle, cid),
    do: Warm.get_by_correlation(warm, cid, result, retired(handle))

  # What the disk tier asks of the hot one (only when it needs it): the
  # newest timestamp retention removed from memory.
  defp retired(handle), do: fn -> Support.native(Native.store_retired_newest(handle)) end

  defp warm_prune(result, nil, _ts), do: result
  defp warm_prune(result, warm, ts), do: Warm.prune_before(warm, ts, result)

  # `acc` holds the earlier slices, newest first (never empty here).
  defp concat(acc, events), do: Enum.concat(Enum.reverse([events | acc]))

  # A batch of at most @chunk events is validated and stored by one NIF
  # call. A longer one is validated chunk by chunk first, then stored, so a
  # bad event in a late chunk stores nothing (ids and timestamps beyond 64
  # bits, which only the store rejects, are checked up front too).
  defp put_batch(handle, nil, events), do: put_batch(handle, events)

  defp put_batch(handle, warm, events) when length(events) <= @chunk,
    do: Warm.put_batch(handle, warm, events, fn -> validate_all(events) end)

  defp put_batch(handle, warm, events), do: put_chunks(events, &put_batch(handle, warm, &1))

  defp put_batch(handle, events) when length(events) <= @chunk do
    case Native.store_put_batch(handle, events) do
      {:ok, _ids} = stored -> stored
      put -> checked(put, events, fn -> Native.store_put_batch_dirty(handle, events) end)
    end
  end

  defp put_batch(handle, events), do: put_chunks(events, &put_batch(handle, &1))

  # A long batch: every chunk is checked first, then each is stored by
  # `put_chunk`, in order, until one fails.
  defp put_chunks(events, put_chunk) do
    chunks = Enum.chunk_every(events, @chunk)

    with :ok <- check_chunks(chunks),
         true <- Enum.all?(events, &Support.storable?/1) || {:error, Support.unstorable()} do
      chunks
      |> Enum.reduce_while({:ok, []}, fn chunk, {:ok, acc} ->
        case put_chunk.(chunk) do
          {:ok, ids} -> {:cont, {:ok, [ids | acc]}}
          error -> {:halt, error}
        end
      end)
      |> then(fn
        {:ok, parts} -> {:ok, parts |> Enum.reverse() |> Enum.concat()}
        error -> error
      end)
    end
  end

  defp check_chunks(chunks) do
    Enum.reduce_while(chunks, :ok, fn chunk, :ok ->
      case Native.store_check_batch(chunk) do
        :ok -> {:cont, :ok}
        _dirty_or_invalid -> {:halt, validate_all(chunk)}
      end
    end)
  end

  # The one place that routes store writes: a normal-scheduler store NIF
  # validates and stores a small valid input in one call. It answers
  # `:dirty` over its byte budget (`NORMAL_BYTES` in
  # native/foundation_nif/src/budget.rs, 64 KiB) and `:invalid` when the
  # input fails validation (or its data is too close to the size limit to
  # tell cheaply), having done nothing; then the exact validation runs here,
  # for its error, and the DirtyCpu twin stores what passed.
  defp checked(:invalid, events, dirty), do: checked(:dirty, events, dirty)

  defp checked(result, events, dirty) do
    result
    |> Route.dirty(fn -> with :ok <- validate_all(events), do: dirty.() end)
    |> Support.native()
  end

  defp validate_all(events) do
    Enum.reduce_while(events, :ok, fn event, :ok ->
      case EventValidator.validate(event) do
        :ok -> {:cont, :ok}
        error -> {:halt, error}
      end
    end)
  end

  defp init_failed(reason),
    do: Support.unavailable("Failed to initialize event store: #{inspect(reason)}")
end
