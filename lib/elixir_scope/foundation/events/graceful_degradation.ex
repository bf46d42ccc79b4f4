defmodule ElixirScope.Foundation.Events.GracefulDegradation do
  @moduledoc """
  Event operations that keep working when the event layer fails.

    * `new_event_safe/2` always returns an `%Event{}`: the real one, one built
      from sanitized data, or a minimal placeholder event.
    * `serialize_safe/1` always returns a binary: the normal serialization, or
      a JSON fallback built in Rust (serde_json), or a minimal fallback.
    * `deserialize_safe/1` never raises and also decodes the two fallback
      formats back (JSON map keys become atoms only when such atoms exist).
    * `store_safe/1` buffers events whose store **raised** in a node-wide
      bounded buffer (100 events, newest first) held in the native library:
      it survives the death of the caller. Read it with `buffered_events/0`,
      retry it with `flush_buffer/0`, empty it with `take_buffered_events/0`.
    * `query_safe/1` turns a raising query into
      `{:ok, [], %{warning: "Service temporarily unavailable"}}`.
  """

  require Logger

  alias ElixirScope.Foundation.{Events, Native, Utils}
  alias ElixirScope.Foundation.Types.Event

  @typedoc "Result of `flush_buffer/0`."
  @type flush_result :: %{stored: non_neg_integer(), failed: non_neg_integer()}

  @doc """
  `Events.new_event/2`, returning the bare event. On `{:error, _}` a minimal
  event; on an exception, a retry with sanitized data (pids, refs, ports and
  funs replaced by their `inspect` strings), then a minimal event.

  The minimal event has the requested type, a fresh id, a microsecond
  system-time `timestamp` and data
  `%{original_data_error: "Failed to serialize original data", fallback_info: %{original_data_type:, sanitization_attempted: true, timestamp: DateTime}}`.
  """
  @spec new_event_safe(atom(), term()) :: Event.t()
  def new_event_safe(event_type, data) do
    case Events.new_event(event_type, data) do
      {:ok, event} -> event
      {:error, _} -> minimal_event(event_type, data)
    end
  rescue
    exception ->
      Logger.warning("Event creation failed, retrying sanitized: #{Exception.message(exception)}")
      retry_sanitized(event_type, data)
  end

  @doc """
  `Events.serialize/1`'s binary. When it fails or raises:
  `:erlang.term_to_binary({:json_fallback, json})` with json the event's
  fields (`wall_time` ISO-8601, `node`/`pid` as strings, sanitized data)
  encoded by the native JSON encoder; if that fails too,
  `:erlang.term_to_binary({:minimal_fallback, %{event_type, timestamp, error: "Serialization failed"}})`.
  """
  @spec serialize_safe(Event.t() | term()) :: binary()
  def serialize_safe(event) do
    case Events.serialize(event) do
      {:ok, binary} when is_binary(binary) -> binary
      _ -> fallback_serialize(event)
    end
  rescue
    _ -> fallback_serialize(event)
  end

  @doc """
  `Events.deserialize/1`'s result. When that fails (or raises) and the
  binary holds one of `serialize_safe/1`'s fallback formats:
  `{:json_fallback, json}` -> `{:ok, %Event{}}` (keys and `event_type` become
  atoms only when they already exist; unknown keys stay strings);
  `{:minimal_fallback, m}` -> `{:ok, %{fallback_data: m, warning: "Minimal fallback used"}}`.
  Never raises.
  """
  @spec deserialize_safe(binary()) :: {:ok, term()} | {:error, term()}
  def deserialize_safe(binary) when is_binary(binary) do
    case Events.deserialize(binary) do
      {:ok, _} = ok -> ok
      {:error, _} = error -> decode_fallback(binary, error)
    end
  rescue
    _ -> decode_fallback(binary, {:error, :deserialization_failed})
  end

  @doc """
  `Events.store/1`'s result. Only when it raises (or exits) is the event
  put in the fallback buffer, returning `:ok`. A stopped event store gives
  its normal `{:error, %Types.Error{}}`.
  """
  @spec store_safe(Event.t()) :: {:ok, pos_integer()} | :ok | {:error, term()}
  def store_safe(event) do
    Events.store(event)
  rescue
    exception -> buffer(event, Exception.message(exception))
  catch
    :exit, reason -> buffer(event, inspect(reason))
  end

  @doc "`Events.query/1`, or `{:ok, [], %{warning: ...}}` when it raises or exits."
  @spec query_safe(map() | keyword()) ::
          {:ok, [Event.t()]} | {:error, term()} | {:ok, [], %{warning: String.t()}}
  def query_safe(params) do
    Events.query(params)
  rescue
    _ -> {:ok, [], %{warning: "Service temporarily unavailable"}}
  catch
    :exit, _ -> {:ok, [], %{warning: "Service temporarily unavailable"}}
  end

  @doc "The buffered events, newest first (at most 100)."
  @spec buffered_events() :: [term()]
  def buffered_events do
    {:ok, events} = Native.fallback_list()
    events
  end

  @doc "Removes and returns the buffered events, newest first."
  @spec take_buffered_events() :: [term()]
  def take_buffered_events do
    {:ok, events} = Native.fallback_take()
    events
  end

  @doc """
  Empties the buffer and stores its events again, oldest first, through
  `store_safe/1`; events that still fail are counted in `:failed` (and land
  in the buffer again if their store raised).
  """
  @spec flush_buffer() :: flush_result()
  def flush_buffer do
    take_buffered_events()
    |> Enum.reverse()
    |> Enum.reduce(%{stored: 0, failed: 0}, fn event, acc ->
      case store_safe(event) do
        {:ok, _id} -> Map.update!(acc, :stored, &(&1 + 1))
        _ -> Map.update!(acc, :failed, &(&1 + 1))
      end
    end)
  end

  ## new_event_safe

  defp retry_sanitized(event_type, data) do
    case Events.new_event(event_type, sanitize(data)) do
      {:ok, event} -> event
      {:error, _} -> minimal_event(event_type, data)
    end
  rescue
    _ -> minimal_event(event_type, data)
  end

  defp minimal_event(event_type, data) do
    %Event{
      event_type: event_type,
      event_id: Utils.generate_id(),
      timestamp: System.system_time(:microsecond),
      wall_time: DateTime.utc_now(),
      node: node(),
      pid: self(),
      correlation_id: nil,
      parent_id: nil,
      data: %{
        original_data_error: "Failed to serialize original data",
        fallback_info: %{
          original_data_type: data_type(data),
          sanitization_attempted: true,
          timestamp: DateTime.utc_now()
        }
      }
    }
  end

  defp data_type(data) when is_map(data), do: :map
  defp data_type(data) when is_list(data), do: :list
  defp data_type(data) when is_binary(data), do: :binary
  defp data_type(data) when is_atom(data), do: :atom
  defp data_type(data) when is_number(data), do: :number
  defp data_type(data) when is_pid(data), do: :pid
  defp data_type(data) when is_reference(data), do: :reference
  defp data_type(data) when is_function(data), do: :function
  defp data_type(_data), do: :unknown

  # Structs are sanitized field by field but stay plain maps.
  defp sanitize(data) when is_pid(data) or is_reference(data) or is_port(data),
    do: inspect(data)

  defp sanitize(data) when is_function(data), do: inspect(data)
  defp sanitize(data) when is_list(data), do: sanitize_list(data)

  defp sanitize(data) when is_tuple(data),
    do: data |> Tuple.to_list() |> sanitize_list() |> List.to_tuple()

  defp sanitize(data) when is_map(data),
    do: Map.new(Map.drop(data, [:__struct__]), fn {k, v} -> {sanitize(k), sanitize(v)} end)

  defp sanitize(data), do: data

  # Improper lists become proper ones (their tail is kept as the last item).
  defp sanitize_list([head | tail]), do: [sanitize(head) | sanitize_list(tail)]
  defp sanitize_list([]), do: []
  defp sanitize_list(tail), do: [sanitize(tail)]

  ## serialize_safe / deserialize_safe

  defp fallback_serialize(event) do
    fields = json_fields(event)

    case Native.json_encode(fields) do
      {:ok, json} -> :erlang.term_to_binary({:json_fallback, json})
      {:error, _} -> minimal_fallback(event)
    end
  rescue
    _ -> minimal_fallback(event)
  end

  defp json_fields(event) do
    get = fn key -> if is_map(event), do: Map.get(event, key) end

    %{
      event_type: get.(:event_type),
      event_id: get.(:event_id),
      timestamp: get.(:timestamp),
      wall_time: iso8601(get.(:wall_time)),
      node: get.(:node) && to_string(get.(:node)),
      pid: get.(:pid) && inspect(get.(:pid)),
      correlation_id: get.(:correlation_id),
      parent_id: get.(:parent_id),
      data: sanitize(get.(:data))
    }
  end

  defp iso8601(%DateTime{} = time), do: DateTime.to_iso8601(time)
  defp iso8601(other), do: other

  defp minimal_fallback(event) do
    get = fn key -> if is_map(event), do: Map.get(event, key) end

    :erlang.term_to_binary(
      {:minimal_fallback,
       %{
         event_type: get.(:event_type),
         timestamp: get.(:timestamp),
         error: "Serialization failed"
       }}
    )
  end

  defp decode_fallback(binary, original) do
    case safe_binary_to_term(binary) do
      {:ok, {:json_fallback, json}} when is_binary(json) ->
        decode_json_event(json)

      {:ok, {:minimal_fallback, m}} ->
        {:ok, %{fallback_data: m, warning: "Minimal fallback used"}}

      _ ->
        original
    end
  end

  defp safe_binary_to_term(binary) do
    {:ok, :erlang.binary_to_term(binary, [:safe])}
  rescue
    ArgumentError -> :error
  end

  defp decode_json_event(json) do
    case Native.json_decode(json) do
      {:ok, fields} when is_map(fields) ->
        {:ok, struct(Event, Map.update(fields, :event_type, nil, &existing_atom/1))}

      _ ->
        {:error, :deserialization_failed}
    end
  end

  defp existing_atom(name) when is_binary(name) do
    String.to_existing_atom(name)
  rescue
    ArgumentError -> name
  end

  defp existing_atom(other), do: other

  ## store_safe buffer

  defp buffer(event, reason) do
    Logger.warning("Event store failed, buffering the event: #{reason}")
    {:ok, _length} = Native.fallback_push(event)
    :ok
  end
end
