defmodule ElixirScope.Foundation.Logic.EventLogic do
  @moduledoc """
  Pure event logic: building events, serialization and
  correlation helpers.

  Events made here carry **millisecond** monotonic timestamps
  (`Utils.monotonic_timestamp/0`) and are checked by
  `ElixirScope.Foundation.Validation.EventValidator` (rules in Rust).
  Serialization gives the bytes of `:erlang.term_to_binary/2` (compressed
  by default). Small events (a bounded walk of at most ~1 000 terms says
  so) are encoded on the caller's scheduler by the library's own writer of
  that format, byte for byte the BIF's; bigger ones by a dirty CPU NIF
  with the BEAM's own encoder and zlib settings, because the BIF
  compresses in slices of several milliseconds on the caller's normal
  scheduler (see "Scheduler safety" in `docs/architecture.md`). Deserialization gives the
  result of `:erlang.binary_to_term(binary, [:safe])`: a binary naming an
  atom this node does not know is rejected with `:deserialization_failed`
  and the atom is not created (the original used `binary_to_term/1`).
  Binaries that decode to at most 64 KiB (read from the compressed form's
  header, else `byte_size/1`) call that BIF; bigger ones are decoded by a
  dirty CPU NIF with the same rules, because the BIF inflates a compressed
  binary in slices of several milliseconds on the caller's scheduler.

  Logic errors (`:serialization_failed`, `:deserialization_failed`) are
  `%ElixirScope.Foundation.Types.Error{}` with `code: nil`, category `:data`,
  subcategory `:runtime`, severity `:medium`.
  """

  alias ElixirScope.Foundation.Native
  alias ElixirScope.Foundation.Native.Route
  alias ElixirScope.Foundation.Types.{Error, Event}
  alias ElixirScope.Foundation.Utils
  alias ElixirScope.Foundation.Validation.EventValidator

  @typedoc "`{:ok, event}` or the validator's error."
  @type event_result :: {:ok, Event.t()} | {:error, Error.t()}

  @doc """
  Builds and validates an event. Options (all optional, other keys ignored):

    * `:event_id` - default `Utils.generate_id/0`
    * `:timestamp` - default `Utils.monotonic_timestamp/0` (milliseconds)
    * `:wall_time` - default `DateTime.utc_now/0`
    * `:node` - default `Node.self/0`
    * `:pid` - default `self/0`
    * `:correlation_id`, `:parent_id` - default `nil`

  A `nil` type gives `:validation_failed` "Event type cannot be nil"; any
  atom is accepted.

      iex> {:ok, e} = ElixirScope.Foundation.Logic.EventLogic.create_event(:test, %{a: 1})
      iex> {e.event_type, e.data}
      {:test, %{a: 1}}
  """
  @spec create_event(atom(), term(), keyword()) :: event_result()
  def create_event(event_type, data, opts \\ []) do
    event = %Event{
      event_id: opt(opts, :event_id) || Utils.generate_id(),
      event_type: event_type,
      timestamp: opt(opts, :timestamp) || Utils.monotonic_timestamp(),
      wall_time: opt(opts, :wall_time) || DateTime.utc_now(),
      node: opt(opts, :node) || Node.self(),
      pid: opt(opts, :pid) || self(),
      correlation_id: opt(opts, :correlation_id),
      parent_id: opt(opts, :parent_id),
      data: data
    }

    case EventValidator.validate(event) do
      :ok -> {:ok, event}
      {:error, _} = error -> error
    end
  end

  @doc """
  A `:function_entry` event. `args` larger than 10 000 external bytes are
  replaced by `Utils.truncate_if_large/1`'s marker. Options are passed to
  `create_event/3`; `:caller_module`, `:caller_function`, `:caller_line` go
  into the data.
  """
  @spec create_function_entry(module(), atom(), arity(), list(), keyword()) :: event_result()
  def create_function_entry(module, function, arity, args, opts \\ []) do
    data = %{
      call_id: Utils.generate_id(),
      module: module,
      function: function,
      arity: arity,
      args: Utils.truncate_if_large(args),
      caller_module: opt(opts, :caller_module),
      caller_function: opt(opts, :caller_function),
      caller_line: opt(opts, :caller_line)
    }

    create_event(:function_entry, data, opts)
  end

  @doc "A `:function_exit` event (large results truncated)."
  @spec create_function_exit(module(), atom(), arity(), pos_integer(), term(), integer(), atom()) ::
          event_result()
  def create_function_exit(module, function, arity, call_id, result, duration_ns, exit_reason) do
    data = %{
      call_id: call_id,
      module: module,
      function: function,
      arity: arity,
      result: Utils.truncate_if_large(result),
      duration_ns: duration_ns,
      exit_reason: exit_reason
    }

    create_event(:function_exit, data)
  end

  @doc """
  A `:state_change` event; `state_diff` is `:no_change` when the untruncated
  states are `==`, else `:changed`. Options `:trigger_message` and
  `:trigger_call_id` go into the data; all options go to `create_event/3`.
  """
  @spec create_state_change(pid(), atom(), term(), term(), keyword()) :: event_result()
  def create_state_change(server_pid, callback, old_state, new_state, opts \\ []) do
    data = %{
      server_pid: server_pid,
      callback: callback,
      old_state: Utils.truncate_if_large(old_state),
      new_state: Utils.truncate_if_large(new_state),
      state_diff: if(old_state == new_state, do: :no_change, else: :changed),
      trigger_message: opt(opts, :trigger_message),
      trigger_call_id: opt(opts, :trigger_call_id)
    }

    create_event(:state_change, data, opts)
  end

  @doc """
  Encodes an event in the external term format. Option `:compression`
  (default `true`) uses `[:compressed]`.
  """
  @spec serialize_event(Event.t(), keyword()) :: {:ok, binary()} | {:error, Error.t()}
  def serialize_event(%Event{} = event, opts \\ []) do
    compressed? = if Keyword.get(opts, :compression, true), do: true, else: false

    case encode(event, compressed?) do
      {:ok, binary} -> {:ok, binary}
      {:error, native} -> serialization_failed(%ErlangError{original: native}, event)
    end
  rescue
    exception -> serialization_failed(exception, event)
  end

  # The same bytes either way: small terms on this scheduler, big ones on a
  # dirty one (keeping the normal schedulers free).
  defp encode(event, compressed?) do
    case Native.serialize_small(event, compressed?) do
      false -> Native.serialize_dirty(event, compressed?)
      done -> done
    end
  end

  defp serialization_failed(exception, event) do
    runtime_error(:serialization_failed, "Failed to serialize event", %{
      original_error: exception,
      event_id: event.event_id
    })
  end

  @doc """
  Decodes and validates an event. Uses `binary_to_term/2` with `[:safe]`
  (binaries decoding to over 64 KiB: a dirty NIF with the same results):
  garbage, a non-event term, or a binary naming an atom unknown to this node
  gives `:deserialization_failed` (context `%{original_error, binary_size}`);
  a decoded but invalid `%Event{}` gives the validator's error.
  """
  @spec deserialize_event(binary()) :: event_result()
  def deserialize_event(binary) when is_binary(binary) do
    %Event{} = event = decode(binary)

    # The decoded size bounds the data's external size: no measuring.
    case EventValidator.validate_bounded(event, decoded_size(binary)) do
      :ok -> {:ok, event}
      {:error, _} = error -> error
    end
  rescue
    exception ->
      runtime_error(:deserialization_failed, "Failed to deserialize event", %{
        original_error: exception,
        binary_size: byte_size(binary)
      })
  end

  # `:erlang.binary_to_term(binary, [:safe])`, same result and same
  # exception: the NIF's failure is raised as the BIF's `badarg` with the
  # BIF's stack entry, so `rescue` normalizes it to the same ArgumentError.
  #
  # The BIF's cost grows with the decoded size (bytes after the version
  # byte; for the compressed form the size its header announces, which
  # bounds the BIF's inflating), so it runs on the caller's normal scheduler
  # up to the NIFs' normal-scheduler byte budget (`Route.normal_bytes/0`),
  # the same bound the store's NIFs decode within; bigger binaries are
  # decoded by a dirty CPU NIF (docs/architecture.md, "Scheduler safety").
  defp decode(binary) do
    Route.fits(
      decoded_size(binary) <= Route.normal_bytes(),
      fn -> :erlang.binary_to_term(binary, [:safe]) end,
      fn -> decode_dirty(binary) end
    )
  end

  defp decode_dirty(binary) do
    case Native.deserialize_dirty(binary) do
      {:ok, term} ->
        term

      {:error, _native} ->
        :erlang.raise(:error, :badarg, [
          {:erlang, :binary_to_term, [binary, [:safe]], [error_info: %{module: :erl_erts_errors}]}
        ])
    end
  end

  defp decoded_size(<<131, 80, size::32, _::binary>>), do: size
  defp decoded_size(binary), do: byte_size(binary)

  @doc "`{:ok, byte_size}` of the compressed serialization."
  @spec calculate_serialized_size(Event.t()) :: {:ok, non_neg_integer()} | {:error, Error.t()}
  def calculate_serialized_size(%Event{} = event) do
    with {:ok, binary} <- serialize_event(event), do: {:ok, byte_size(binary)}
  end

  @doc "Events with correlation id `cid`, stably sorted by timestamp (ascending)."
  @spec extract_correlation_chain([Event.t()], String.t()) :: [Event.t()]
  def extract_correlation_chain(events, correlation_id) when is_binary(correlation_id) do
    events
    |> Enum.filter(&(field!(&1, :correlation_id) == correlation_id))
    |> Enum.sort_by(&field!(&1, :timestamp))
  end

  @doc "Events grouped by correlation id (nil ids dropped), each group timestamp-ascending."
  @spec group_by_correlation([Event.t()]) :: %{String.t() => [Event.t()]}
  def group_by_correlation(events) do
    events
    |> Enum.reject(&is_nil(field!(&1, :correlation_id)))
    |> Enum.group_by(&field!(&1, :correlation_id))
    |> Map.new(fn {cid, group} -> {cid, Enum.sort_by(group, &field!(&1, :timestamp))} end)
  end

  @doc "Events with `start <= timestamp <= stop`, in input order."
  @spec filter_by_time_range([Event.t()], integer(), integer()) :: [Event.t()]
  def filter_by_time_range(events, start_time, end_time)
      when is_integer(start_time) and is_integer(end_time) do
    Enum.filter(events, fn event ->
      timestamp = field!(event, :timestamp)
      timestamp >= start_time and timestamp <= end_time
    end)
  end

  @doc "`%{event | data: fun.(event.data)}`."
  @spec transform_event_data(Event.t(), (term() -> term())) :: Event.t()
  def transform_event_data(%Event{} = event, fun) when is_function(fun, 1) do
    %{event | data: fun.(event.data)}
  end

  # Options are read with Access, as in the original (keyword list, map or
  # nil); a struct or any other term raises ArgumentError (Access on a
  # struct would raise UndefinedFunctionError).
  defp opt(opts, key) when is_list(opts) or is_nil(opts), do: opts[key]
  defp opt(%_{} = opts, _key), do: bad_opts(opts)
  defp opt(opts, key) when is_map(opts), do: opts[key]
  defp opt(opts, _key), do: bad_opts(opts)

  @spec bad_opts(term()) :: no_return()
  defp bad_opts(opts),
    do: raise(ArgumentError, "options must be a keyword list, got: #{inspect(opts, limit: 5)}")

  # `event.field` on an atom would be a remote call (UndefinedFunctionError);
  # a non-map element raises ArgumentError, a map without the key KeyError.
  defp field!(event, key) when is_map(event), do: Map.fetch!(event, key)

  defp field!(other, _key),
    do: raise(ArgumentError, "expected an event, got: #{inspect(other, limit: 5)}")

  defp runtime_error(error_type, message, context) do
    {:error,
     Error.new(
       code: nil,
       error_type: error_type,
       message: message,
       severity: :medium,
       context: context,
       category: :data,
       subcategory: :runtime
     )}
  end
end
