defmodule ElixirScope.Foundation.Services.EventStore.Subscriptions do
  @moduledoc false
  # Live subscriptions of the event store. The subscription itself lives in
  # the native store (its filter index, buffer and delivery thread), so it
  # survives a crash of the EventStore process; this module validates the
  # arguments, publishes `ref => {namespace, handle, id}` in the handle table
  # (owned by ProcessRegistry.Owner, so it outlives the EventStore process
  # too) and asks the EventStore process to monitor the subscriber. The
  # server half (`monitor/3`, `down/2`, `stopped/2`) runs in that process,
  # which monitors every subscriber again when it restarts.

  alias ElixirScope.Foundation.{Error, ErrorTable, Native, ProcessRegistry}
  alias ElixirScope.Foundation.Services.{Handles, TelemetryService}
  alias ElixirScope.Foundation.Services.EventStore.Support
  alias ElixirScope.Foundation.Types

  @event [:elixir_scope, :foundation, :subscription]
  @keys [:event_type, :correlation_id]
  @opts [:from, :max_in_flight, :buffer, :namespace]

  @doc false
  @spec subscribe(map() | keyword(), keyword()) :: {:ok, reference()} | {:error, Types.Error.t()}
  def subscribe(filter, opts) do
    with {:ok, type, cid} <- check_filter(filter),
         {:ok, from, in_flight, buffer} <- check_opts(opts),
         namespace = Support.namespace(opts),
         :ok <- enabled(namespace),
         {:ok, handle} <- handle(namespace) do
      ref = make_ref()

      native =
        Native.store_subscribe(handle, self(), ref, type, cid, in_flight, buffer, from == :start)

      with {:ok, id} <- Support.native(native) do
        Handles.put(key(ref), {namespace, handle, id})
        cast(namespace, {:monitor_subscriber, self(), ref, id})
        filter = %{event_type: type, correlation_id: cid}
        meta = %{ref: ref, namespace: namespace, filter: filter, from: from}
        emit(:start, %{max_in_flight: in_flight, buffer: buffer}, meta, namespace)
        {:ok, ref}
      end
    end
  end

  @doc false
  @spec ack(reference(), non_neg_integer()) :: :ok
  def ack(ref, count) do
    with {_namespace, handle, id} <- Handles.get(key(ref)),
         do: Native.store_ack(handle, id, count)

    :ok
  end

  @doc false
  @spec unsubscribe(reference()) :: :ok
  def unsubscribe(ref) do
    case Handles.get(key(ref)) do
      {namespace, handle, id} ->
        end_subscription(namespace, handle, ref, id, :unsubscribed)
        cast(namespace, {:demonitor_subscriber, ref})

      nil ->
        :ok
    end
  end

  ## Server half (runs in the EventStore process)

  @doc false
  # Takes the dropped notices and monitors every existing subscriber (after
  # a restart, the subscriptions are still in the native store).
  def init(state) do
    Native.store_subscription_owner(state.handle, self())

    case Native.store_subscriptions(state.handle) do
      {:ok, rows} ->
        Enum.reduce(rows, Map.put(state, :subs, %{}), fn {id, pid, ref, _, _}, acc ->
          monitor(acc, pid, ref, id)
        end)

      _ ->
        Map.put(state, :subs, %{})
    end
  end

  @doc false
  def monitor(%{subs: subs} = state, pid, ref, id) when is_pid(pid) and is_reference(ref) do
    if Map.has_key?(subs, ref) do
      state
    else
      mon = Process.monitor(pid)
      subs = subs |> Map.put(ref, mon) |> Map.put(mon, {ref, id})
      %{state | subs: subs}
    end
  end

  @doc false
  def demonitor(%{subs: subs} = state, ref) do
    case Map.pop(subs, ref) do
      {mon, subs} when is_reference(mon) ->
        Process.demonitor(mon, [:flush])
        %{state | subs: Map.delete(subs, mon)}

      _ ->
        state
    end
  end

  @doc false
  # A subscriber died: its subscriptions end. Returns nil for another monitor.
  def down(%{subs: subs} = state, mon) do
    case Map.pop(subs, mon) do
      {{ref, id}, subs} ->
        end_subscription(state.namespace, state.handle, ref, id, :subscriber_down)
        %{state | subs: Map.delete(subs, ref)}

      _ ->
        nil
    end
  end

  @doc false
  def dropped(%{namespace: namespace}, ref, count) do
    emit(:dropped, %{count: count}, %{ref: ref, namespace: namespace}, namespace)
  end

  @doc false
  # Before a normal stop closes the store (which sends every subscriber
  # `{:foundation_subscription_ended, ref, :store_stopped}`).
  def stopped(handle, namespace) do
    case Native.store_subscriptions(handle) do
      {:ok, rows} ->
        for {_id, _pid, ref, _, dropped} <- rows do
          Handles.delete(key(ref))

          emit(
            :stop,
            %{dropped: dropped},
            %{ref: ref, namespace: namespace, reason: :store_stopped},
            namespace
          )
        end

        :ok

      _ ->
        :ok
    end
  end

  ## Private

  defp key(ref), do: {:subscription, ref}

  defp end_subscription(namespace, handle, ref, id, reason) do
    Handles.delete(key(ref))

    dropped =
      case Native.store_subscriptions(handle) do
        {:ok, rows} -> Enum.find_value(rows, 0, fn row -> elem(row, 0) == id and elem(row, 4) end)
        _ -> 0
      end

    if Native.store_unsubscribe(handle, id) == {:ok, true} do
      emit(
        :stop,
        %{dropped: dropped},
        %{ref: ref, namespace: namespace, reason: reason},
        namespace
      )
    end

    :ok
  end

  defp cast(namespace, message) do
    case ProcessRegistry.lookup(namespace, :event_store) do
      {:ok, pid} -> GenServer.cast(pid, message)
      _ -> :ok
    end
  end

  defp emit(name, measurements, metadata, namespace) do
    TelemetryService.execute(@event ++ [name], measurements, metadata, namespace: namespace)
  end

  defp handle(namespace) do
    case Support.lookup(namespace) do
      %{handle: handle} -> {:ok, handle}
      nil -> {:error, Support.unavailable()}
    end
  end

  defp enabled(namespace) do
    case ElixirScope.Foundation.Config.get([:interface, :enable_streaming], namespace: namespace) do
      {:ok, false} -> {:error, Types.Error.new(ErrorTable.named(:streaming_disabled))}
      _ -> :ok
    end
  catch
    _, _ -> :ok
  end

  defp check_filter(filter) when is_list(filter) do
    if Keyword.keyword?(filter), do: check_filter(Map.new(filter)), else: invalid(:filter, filter)
  end

  defp check_filter(%{} = filter) when not is_struct(filter) do
    case Map.keys(filter) -- @keys do
      [] -> check_fields(Map.get(filter, :event_type), Map.get(filter, :correlation_id))
      [key | _] -> invalid(key, Map.fetch!(filter, key), "unknown filter key")
    end
  end

  defp check_filter(other), do: invalid(:filter, other)

  defp check_fields(type, _cid) when not is_atom(type), do: invalid(:event_type, type)

  defp check_fields(_type, cid) when not is_binary(cid) and cid != nil,
    do: invalid(:correlation_id, cid)

  defp check_fields(type, cid), do: {:ok, type, cid}

  defp check_opts(opts) when is_list(opts) do
    with true <- Keyword.keyword?(opts) || invalid(:opts, opts),
         [] <- Keyword.keys(opts) -- @opts do
      from = Keyword.get(opts, :from, :now)
      in_flight = Keyword.get(opts, :max_in_flight, 1000)
      buffer = Keyword.get(opts, :buffer, 10_000)

      cond do
        from not in [:now, :start] -> invalid(:from, from)
        not positive?(in_flight) -> invalid(:max_in_flight, in_flight)
        not positive?(buffer) -> invalid(:buffer, buffer)
        true -> {:ok, from, in_flight, buffer}
      end
    else
      [key | _] -> invalid(key, Keyword.get(opts, key), "unknown option")
      error -> error
    end
  end

  defp check_opts(opts), do: invalid(:opts, opts)

  defp positive?(n), do: is_integer(n) and n > 0 and n <= 100_000_000

  defp invalid(key, value, what \\ "invalid") do
    message = "Invalid subscription: #{what} #{inspect(key)}: #{inspect(value)}"
    {:error, Error.from_native({:invalid_input, message}, %{key => value})}
  end
end
