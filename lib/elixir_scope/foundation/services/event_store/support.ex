defmodule ElixirScope.Foundation.Services.EventStore.Support do
  @moduledoc false
  # Helpers of Services.EventStore: handle lookup, query normalisation,
  # retention settings, errors and telemetry. Kept out of the service module
  # so each stays small.

  alias ElixirScope.Foundation.{Error, ErrorTable, Sandbox, Types}
  alias ElixirScope.Foundation.Services.{Errors, Handles, TelemetryService}

  @i64_min -0x8000_0000_0000_0000
  @i64_max 0x7FFF_FFFF_FFFF_FFFF
  @u64_max 0xFFFF_FFFF_FFFF_FFFF
  @big 0x3FFF_FFFF_FFFF_FFFF
  @events_stored [:foundation, :event_store, :events_stored]

  @doc false
  def key(namespace), do: {ElixirScope.Foundation.Services.EventStore, namespace}

  @doc "The namespace of a call: `opts[:namespace]`, else the caller's sandbox, else `:production`."
  def namespace(opts), do: Sandbox.namespace(opts)

  @doc false
  def entry(opts) when is_list(opts), do: lookup(namespace(opts))

  @doc """
  The published `%{handle, start_time}` of `namespace`, or nil: in
  `:persistent_term` for `:production`, in the handle table
  (`Services.Handles`) for `{:test, ref}` namespaces.
  """
  def lookup(:production), do: :persistent_term.get(key(:production), nil)
  def lookup(namespace), do: Handles.get(key(namespace))

  @doc "Publishes the store entry of `namespace` (see `lookup/1`)."
  def publish(:production, entry), do: :persistent_term.put(key(:production), entry)
  def publish(namespace, entry), do: Handles.put(key(namespace), entry)

  @doc "Unpublishes the store entry of `namespace`."
  def unpublish(:production), do: :persistent_term.erase(key(:production))
  def unpublish(namespace), do: Handles.delete(key(namespace))

  @doc false
  def u64_max, do: @u64_max

  @doc false
  def unavailable(message \\ nil), do: Errors.unavailable(:event_store, message)

  @doc false
  def not_found(id) do
    Types.Error.new(ErrorTable.named(:event_not_found) ++ [context: %{event_id: id}])
  end

  @doc false
  def forbidden, do: Errors.reset_forbidden(:event_store)

  @doc false
  def native({:error, {kind, detail}}), do: {:error, Error.from_native({kind, detail})}
  def native(other), do: other

  @doc false
  def invalid_query(key, value) do
    {:error,
     Error.from_native({:invalid_input, "Invalid query #{inspect(key)}: #{inspect(value)}"}, %{
       key => value
     })}
  end

  @doc """
  `{:ok, {type, range, order, offset, limit}}`, `:empty` (a
  non-atom type matches nothing) or an invalid-input error.
  """
  def normalize_query(query) do
    with {:ok, type} <- query_type(Map.get(query, :event_type)),
         {:ok, range} <- query_range(Map.get(query, :time_range)),
         {:ok, offset} <- query_int(:offset, Map.get(query, :offset), &(&1 >= 0)),
         {:ok, limit} <- query_int(:limit, Map.get(query, :limit), &(&1 > 0)) do
      {:ok, {type, range, order(Map.get(query, :order_by)), offset, limit}}
    end
  end

  defp order(order) when order in [:event_id, :timestamp, :timestamp_desc], do: order
  defp order(_order), do: :unordered

  defp query_type(type) when is_atom(type), do: {:ok, type}
  defp query_type(_type), do: :empty

  defp query_range(nil), do: {:ok, nil}

  defp query_range({start, stop}) when is_integer(start) and is_integer(stop),
    do: {:ok, {clamp(start), clamp(stop)}}

  defp query_range(other), do: invalid_query(:time_range, other)

  # nil, or an integer failing `keep?` (negative offset, limit <= 0), is
  # ignored as in the original; 0 means "none" to the NIF.
  defp query_int(_key, nil, _keep?), do: {:ok, 0}

  defp query_int(_key, n, keep?) when is_integer(n),
    do: {:ok, if(keep?.(n), do: min(n, @big), else: 0)}

  defp query_int(key, other, _keep?), do: invalid_query(key, other)

  @doc "True when the event's id and timestamp fit the store's 64-bit fields."
  def storable?(%{event_id: id, timestamp: ts}),
    do: id <= @u64_max and ts >= @i64_min and ts <= @i64_max

  @doc false
  def unstorable,
    do: Error.from_native({:invalid_input, "event id or timestamp beyond 64 bits"})

  @doc false
  def clamp(n), do: n |> max(@i64_min) |> min(@i64_max)

  @doc """
  Retention settings: start opts win, then the live config
  (`ElixirScope.Foundation.Config.get/1` when available), then
  `Types.Config` defaults merged with the application env.
  """
  def limits(opts) do
    hot = hot_config(Keyword.get(opts, :namespace, :production))
    max_events = Keyword.get(opts, :max_events, Map.get(hot, :max_events, 100_000))
    max_age_s = Keyword.get(opts, :max_age_seconds, Map.get(hot, :max_age_seconds, 3600))
    interval = Keyword.get(opts, :prune_interval, Map.get(hot, :prune_interval, 60_000))
    {non_neg(max_events), non_neg(max_age_s) * 1000, max(non_neg(interval), 10)}
  end

  defp non_neg(n) when is_integer(n) and n > 0, do: n
  defp non_neg(_other), do: 0

  defp hot_config(namespace) do
    case live_config(namespace) do
      {:ok, %{} = hot} -> hot
      _ -> env_config()
    end
  end

  defp live_config(namespace) do
    ElixirScope.Foundation.Config.get([:storage, :hot], namespace: namespace)
  catch
    _, _ -> :error
  end

  defp env_config do
    case ElixirScope.Foundation.Logic.ConfigLogic.build_config([]) do
      {:ok, config} -> config.storage.hot
      {:error, _} -> Types.Config.new().storage.hot
    end
  end

  @doc """
  Emits `[:foundation, :event_store, :events_stored]` through
  `TelemetryService.emit_counter/4` in the caller (never raises), to the
  TelemetryService of the store's own (already resolved) namespace: a
  `{:test, ref}` store never counts into `:production`, and a `:production`
  store called from a sandboxed process counts into `:production`.
  """
  def emit_stored(value, metadata, namespace) do
    TelemetryService.emit_counter(@events_stored, value, metadata, namespace: namespace)
  end

  @doc "The name of the store's counter, `[:foundation, :event_store, :events_stored]`."
  def events_stored, do: @events_stored

  @doc """
  Finishes the `events_stored` count of event `id`, which a write that
  counts itself answered with `outcome` in the telemetry handle of
  `entry` (see `Recorder.finish_count/5`). Never raises.
  """
  def finish_stored(entry, outcome, %{event_type: type}, id) do
    metadata = %{event_type: type, event_id: id}
    TelemetryService.Recorder.finish_count(entry, outcome, @events_stored, 1, metadata)
  end

  @doc "True when the service process of `namespace` is registered and alive."
  def registered?(namespace) do
    ElixirScope.Foundation.Services.Lifecycle.registered?(namespace, :event_store)
  end
end
