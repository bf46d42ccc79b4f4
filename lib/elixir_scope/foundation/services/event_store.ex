defmodule ElixirScope.Foundation.Services.EventStore do
  @moduledoc """
  The event store service (API.md section 16), backed by the Rust store in
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
  still answers the original server messages (`{:store_event, e}`, ...),
  acting on its own namespace's store.

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
  therefore needs no atom lookup by name and no map sorting, which made
  `get/2` ~3x and queries ~2x cheaper than decoding external term format;
  every event still round-trips `==`. This form is only meaningful inside
  the VM that wrote it: external term format stays the durable form (the
  payload decoder also reads whole-event ETF payloads, tag 0), so a disk log
  would persist `:erlang.term_to_binary/1` of the decoded event.

  ## Differences from the original

    * Unordered queries return events by ascending id (the original returned
      map order, arbitrary beyond 32 events).
    * Storing an existing id overwrites it (as before), and the old version's
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

  alias ElixirScope.Foundation.{Native, ProcessRegistry}
  alias ElixirScope.Foundation.Services.EventStore.Support
  alias ElixirScope.Foundation.Types.{Error, Event}
  alias ElixirScope.Foundation.Validation.EventValidator

  # Rust heap + stored encoding per event, measured by bench/event_store.exs.
  @bytes_per_event 540
  # Results up to this many events (and 64 KiB of stored bytes, see
  # routed/2) are decoded on a normal scheduler.
  @bounded 256
  # Events per store_put_batch NIF call (bounded work per call; chunks over
  # the byte budget go to store_put_batch_dirty).
  @chunk 32

  @typedoc "Options every public function accepts."
  @type opts :: [namespace: ProcessRegistry.namespace()]

  ## Client API

  @doc "Validates and stores `event`; returns its own id. An existing id is overwritten."
  @impl ElixirScope.Foundation.Contracts.EventStore
  @spec store(Event.t(), opts()) :: {:ok, pos_integer()} | {:error, Error.t()}
  def store(%Event{} = event, opts \\ []) do
    namespace = Support.namespace(opts)

    with {:ok, handle} <- handle(namespace),
         :ok <- EventValidator.validate(event),
         put = Native.store_put(handle, event),
         {:ok, id} <- Support.native(routed(put, fn -> Native.store_put_dirty(handle, event) end)) do
      Support.emit_stored(1, %{event_type: event.event_type, event_id: id}, namespace)
      {:ok, id}
    end
  end

  @doc """
  Stores `events` in order and returns their ids in input order. All are
  validated first: one invalid event means nothing is stored.
  """
  @impl ElixirScope.Foundation.Contracts.EventStore
  @spec store_batch([Event.t()], opts()) :: {:ok, [pos_integer()]} | {:error, Error.t()}
  def store_batch(events, opts \\ []) when is_list(events) do
    namespace = Support.namespace(opts)

    with {:ok, handle} <- handle(namespace),
         :ok <- validate_all(events),
         {:ok, ids} <- put_chunks(handle, events) do
      n = length(ids)
      if n > 0, do: Support.emit_stored(n, %{batch_size: n}, namespace)
      {:ok, ids}
    end
  end

  @doc """
  Validates `event` and queues it; a worker thread stores it shortly after
  (the non-blocking audit path). A full queue returns a `:resource_exhausted`
  error and is counted in `stats/1` as `async_dropped`.
  """
  @spec store_async(Event.t(), opts()) :: :ok | {:error, Error.t()}
  def store_async(%Event{} = event, opts \\ []) do
    namespace = Support.namespace(opts)

    with {:ok, handle} <- handle(namespace),
         :ok <- EventValidator.validate(event),
         put = Native.store_put_async(handle, event),
         dirty = fn -> Native.store_put_async_dirty(handle, event) end,
         {:ok, :ok} <- Support.native(routed(put, dirty)) do
      meta = %{event_type: event.event_type, event_id: event.event_id}
      Support.emit_stored(1, meta, namespace)
      :ok
    end
  end

  @doc "The event with `id`, or a `:not_found` error (code 3001)."
  @impl ElixirScope.Foundation.Contracts.EventStore
  @spec get(pos_integer(), opts()) :: {:ok, Event.t()} | {:error, Error.t()}
  def get(id, opts \\ []) when is_integer(id) and id > 0 do
    with {:ok, handle} <- handle(opts) do
      case id <= Support.u64_max() and
             routed(Native.store_get(handle, id), fn -> Native.store_get_dirty(handle, id) end) do
        %{} = event -> {:ok, event}
        {:error, _} = error -> Support.native(error)
        _ -> {:error, Support.not_found(id)}
      end
    end
  end

  @doc """
  Events matching `query`: `:event_type`, `:time_range` (`{start, stop}`,
  inclusive), `:order_by` (`:event_id` or `:timestamp` ascending, or, an
  addition, `:timestamp_desc` newest first; anything else orders by
  ascending id), `:offset` (if >= 0), `:limit` (if > 0). Other keys are
  ignored.
  """
  @impl ElixirScope.Foundation.Contracts.EventStore
  @spec query(map(), opts()) :: {:ok, [Event.t()]} | {:error, Error.t()}
  def query(query, opts \\ []) when is_map(query) do
    with {:ok, handle} <- handle(opts) do
      case Support.normalize_query(query) do
        # A small limit bounds the count: normal scheduler (unless over the
        # byte budget); else dirty.
        {:ok, {type, range, order, offset, limit}}
        when limit in 1..@bounded and offset <= @bounded ->
          handle
          |> Native.store_query(type, range, order, offset, limit)
          |> routed(fn -> Native.store_query_dirty(handle, type, range, order, offset, limit) end)
          |> Support.native()

        {:ok, {type, range, order, offset, limit}} ->
          Support.native(Native.store_query_dirty(handle, type, range, order, offset, limit))

        :empty ->
          {:ok, []}

        {:error, _} = error ->
          error
      end
    end
  end

  @doc "Events with `correlation_id`, by ascending timestamp (ties by id)."
  @impl ElixirScope.Foundation.Contracts.EventStore
  @spec get_by_correlation(String.t(), opts()) :: {:ok, [Event.t()]} | {:error, Error.t()}
  def get_by_correlation(correlation_id, opts \\ []) when is_binary(correlation_id) do
    with {:ok, handle} <- handle(opts) do
      handle
      |> Native.store_get_by_correlation(correlation_id, @bounded)
      |> routed(fn -> Native.store_get_by_correlation_dirty(handle, correlation_id) end)
      |> Support.native()
    end
  end

  @doc "Deletes events with `timestamp < ts`; returns how many."
  @impl ElixirScope.Foundation.Contracts.EventStore
  @spec prune_before(integer(), opts()) :: {:ok, non_neg_integer()} | {:error, Error.t()}
  def prune_before(ts, opts \\ []) when is_integer(ts) do
    with {:ok, handle} <- handle(opts) do
      Support.native(Native.store_prune_before(handle, Support.clamp(ts)))
    end
  end

  @doc """
  `{:ok, %{events_stored, events_pruned, start_time, current_event_count,
  uptime_ms, memory_usage_estimate, evicted_max_events, evicted_max_age,
  async_dropped, async_failed, async_queue_len}}`.
  """
  @impl ElixirScope.Foundation.Contracts.EventStore
  @spec stats(opts()) :: {:ok, map()} | {:error, Error.t()}
  def stats(opts \\ []) do
    with {:ok, handle, start_time} <- entry(opts),
         {:ok, native} <- Support.native(Native.store_stats(handle)) do
      s = Map.new(native)
      now = System.monotonic_time(:millisecond)

      {:ok,
       s
       |> Map.drop([:max_id])
       |> Map.merge(%{
         start_time: start_time,
         uptime_ms: now - start_time,
         memory_usage_estimate: s.current_event_count * @bytes_per_event
       })}
    end
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
    opts = Keyword.put(opts, :namespace, Support.namespace(opts))

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
  `:elixir_scope, :test_mode` is true (else code 3002 `:operation_forbidden`).
  """
  @spec reset_state(opts()) :: :ok | {:error, Error.t()}
  def reset_state(opts \\ []) do
    with true <-
           Application.get_env(:elixir_scope, :test_mode, false) || {:error, Support.forbidden()},
         {:ok, handle} <- handle(opts),
         {:ok, :ok} <- Support.native(Native.store_clear(handle)) do
      :ok
    end
  end

  @doc """
  Starts the service. Options (unknown ones are ignored, as in the original):

    * `:namespace` - `:production` (default) or `{:test, ref}`
    * `:max_events` - retention count (default `storage.hot.max_events`; 0 = none)
    * `:max_age_seconds` - retention age (default `storage.hot.max_age_seconds`; 0 = none)
    * `:prune_interval` - ms between age sweeps (default `storage.hot.prune_interval`)
    * `:async_queue_size` - capacity of the `store_async/2` queue (default 10 000)
    * `:shards` - shard count of a new store (default twice the schedulers,
      rounded up to a power of two; see the README's shard benchmark)
  """
  @spec start_link(keyword()) :: GenServer.on_start()
  def start_link(opts \\ []) do
    # A process start names its namespace (default `:production`); only
    # calls resolve the caller's sandbox.
    namespace = Keyword.get(opts, :namespace, :production)
    opts = Keyword.put(opts, :namespace, namespace)

    if ProcessRegistry.namespace?(namespace) do
      GenServer.start_link(__MODULE__, opts,
        name: ProcessRegistry.via_tuple(namespace, :event_store)
      )
    else
      {:error, {:invalid_namespace, namespace}}
    end
  end

  @doc "Stops the service of the namespace (releasing its store); `:ok` if not running."
  @spec stop(opts()) :: :ok
  def stop(opts \\ []) do
    case GenServer.whereis(ProcessRegistry.via_tuple(Support.namespace(opts), :event_store)) do
      nil -> :ok
      pid -> GenServer.stop(pid)
    end
  end

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
    {:ok, %{namespace: namespace, handle: handle, interval: interval}}
  end

  @impl GenServer
  def handle_call(message, _from, %{namespace: ns} = state) do
    {:reply, dispatch(message, namespace: ns), state}
  end

  @impl GenServer
  def handle_info(:expire, state) do
    Native.store_expire(state.handle)
    Process.send_after(self(), :expire, state.interval)
    {:noreply, state}
  end

  def handle_info(_message, state), do: {:noreply, state}

  # A normal stop unpublishes the handle, then closes the store: its worker
  # thread is joined and its events freed now, not when the resource is
  # garbage collected. A caller that read the handle just before gets
  # EventStore's unavailable error from writes and an empty store from reads.
  # Abnormal exits keep both, so a restart resumes the same store.
  @impl GenServer
  def terminate(reason, %{namespace: namespace, handle: handle}) do
    if reason in [:normal, :shutdown] or match?({:shutdown, _}, reason) do
      Support.unpublish(namespace)
      Native.store_close(handle)
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
    shards = Keyword.get(opts, :shards, System.schedulers_online() * 2)
    capacity = Keyword.get(opts, :async_queue_size, 10_000)
    {:ok, handle} = Native.store_new(shards, max_events, max_age_ms, capacity)
    entry = %{handle: handle, start_time: System.monotonic_time(:millisecond)}
    Support.publish(namespace, entry)
    handle
  end

  defp entry(opts) do
    case Support.entry(opts) do
      %{handle: handle, start_time: start_time} -> {:ok, handle, start_time}
      nil -> {:error, Support.unavailable()}
    end
  end

  defp handle(opts) when is_list(opts), do: handle(Support.namespace(opts))

  defp handle(namespace) do
    case Support.lookup(namespace) do
      %{handle: handle} -> {:ok, handle}
      nil -> {:error, Support.unavailable()}
    end
  end

  # Validation succeeded for all events, and ids/timestamps fit 64 bits,
  # so no chunk can fail: the batch stays all-or-nothing.
  defp put_chunks(handle, events) do
    if Enum.all?(events, &Support.storable?/1) do
      events
      |> Enum.chunk_every(@chunk)
      |> Enum.reduce_while({:ok, []}, fn chunk, {:ok, acc} ->
        put = Native.store_put_batch(handle, chunk)

        case Support.native(routed(put, fn -> Native.store_put_batch_dirty(handle, chunk) end)) do
          {:ok, ids} -> {:cont, {:ok, [ids | acc]}}
          error -> {:halt, error}
        end
      end)
      |> then(fn
        {:ok, parts} -> {:ok, parts |> Enum.reverse() |> Enum.concat()}
        error -> error
      end)
    else
      {:error, Support.unstorable()}
    end
  end

  # The one place that routes by size: a normal-scheduler store NIF answers
  # `:dirty`, having done nothing, when the event bytes it would encode or
  # decode exceed its budget (`NORMAL_BYTES` in
  # native/foundation_nif/src/budget.rs, 64 KiB); then its DirtyCpu twin
  # does the call. Small events never leave the normal scheduler.
  defp routed(:dirty, dirty), do: dirty.()
  defp routed(result, _dirty), do: result

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
