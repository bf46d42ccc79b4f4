defmodule ElixirScope.Foundation.Validation.EventValidator do
  @moduledoc """
  Validates an `ElixirScope.Foundation.Types.Event`.

  The rules run in Rust (`foundation_core::validation::event`), the same
  ones the event store applies to every write. The common case, an event
  whose fields are all set and of their types (or `nil` where optional),
  is accepted here without a NIF call, which costs more than these checks,
  and a `nil` required field is reported here too; everything else goes to
  the rules in Rust. The NIF only classifies the eight checked fields, and
  the size of `data` is its exact external term size, as
  `:erlang.external_size/1` gives it: small data (up to a few thousand
  terms, checked by a bounded walk) is measured with that BIF, bigger data
  on a dirty CPU scheduler, so a 1 MB `data` never holds a normal scheduler
  (the BIF does not yield; see `docs/architecture.md`, "Scheduler safety").
  Errors are `%ElixirScope.Foundation.Types.Error{}` with category `:data`,
  subcategory `:validation`:

  | error_type | code | severity |
  |---|---|---|
  | `:validation_failed` | 2001 | high |
  | `:type_mismatch` | 2002 | medium |
  | `:data_too_large` | 2003 | high |
  | `:invalid_event_type` | 2004 | medium |

  `validate/1` runs required fields -> field types -> data size; the first
  failure wins. A non-`%Event{}` argument raises `FunctionClauseError`; an
  `%Event{}` map from which one of the checked fields was deleted raises
  `ArgumentError`.
  """

  alias ElixirScope.Foundation.{Error, ErrorTable, Native, TermSize, Types}
  alias ElixirScope.Foundation.Types.Event

  # The rules' constants (a test checks them against the core's).
  @max_data_size 1_000_000
  # Encoded sizes up to which data certainly passes the size rule (see
  # `validate_bounded/2`).
  @bounded 900_000
  @allowed_event_types [
    :function_entry,
    :function_exit,
    :state_change,
    :message_send,
    :message_receive,
    :spawn,
    :exit,
    :link,
    :unlink,
    :monitor,
    :demonitor,
    :system_event,
    :custom_event,
    :config_updated,
    :config_reset,
    :test,
    :test1,
    :test2,
    :test3,
    :default,
    :type_a,
    :type_b
  ]

  # The errors of a missing required field (what `Error.from_native/2`
  # makes of the rules' answer), built once.
  @required_error ErrorTable.native(:validation_failed) ++ [context: %{}]
  @nil_id [message: "Event ID cannot be nil"] ++ @required_error
  @nil_type [message: "Event type cannot be nil"] ++ @required_error
  @nil_timestamp [message: "Timestamp cannot be nil"] ++ @required_error

  # An event the rules accept, in its common shape: the required fields set
  # and of their types, every optional one `nil` or of its type. Valid
  # events of other shapes (a `false` field skips its type check) and
  # invalid ones are left to the rules.
  defguardp required_set(id, type, ts)
            when is_integer(id) and id > 0 and is_atom(type) and not is_nil(type) and
                   is_integer(ts)

  defguardp optional_typed(wall, node, pid, cid, parent)
            when (is_nil(wall) or is_struct(wall, DateTime)) and is_atom(node) and
                   (is_nil(pid) or is_pid(pid)) and (is_nil(cid) or is_binary(cid)) and
                   (is_nil(parent) or (is_integer(parent) and parent > 0))

  @typedoc "`:ok` or the first broken rule."
  @type result :: :ok | {:error, Types.Error.t()}

  @doc """
  Validates required fields, field types and data size, in that order.

      iex> alias ElixirScope.Foundation.Validation.EventValidator
      iex> {:error, e} = EventValidator.validate(ElixirScope.Foundation.Types.Event.empty())
      iex> {e.error_type, e.code, e.message}
      {:validation_failed, 2001, "Event ID cannot be nil"}
  """
  @spec validate(Event.t()) :: result()
  def validate(%Event{} = event) do
    if well_formed?(event) do
      validate_data_size(event)
    else
      with :ok <- validate_required_fields(event),
           :ok <- validate_field_types(event),
           do: validate_data_size(event)
    end
  end

  @doc "`event_id`, `event_type` and `timestamp` must not be `nil`."
  @spec validate_required_fields(Event.t()) :: result()
  def validate_required_fields(%Event{event_id: id, event_type: type, timestamp: ts})
      when not is_nil(id) and not is_nil(type) and not is_nil(ts),
      do: :ok

  def validate_required_fields(%Event{event_id: id, event_type: type, timestamp: ts}) do
    fields =
      cond do
        is_nil(id) -> @nil_id
        is_nil(type) -> @nil_type
        is_nil(ts) -> @nil_timestamp
      end

    {:error, Types.Error.new(fields)}
  end

  # A checked field deleted from the map: the rules raise ArgumentError.
  def validate_required_fields(%Event{} = event),
    do: event |> Native.event_validate_required() |> finish(%{})

  @doc """
  Checks the type of every truthy field: positive integer ids, atom type and
  node, integer timestamp, `DateTime` wall time, pid, binary correlation id.
  """
  @spec validate_field_types(Event.t()) :: result()
  def validate_field_types(%Event{} = event) do
    if well_formed?(event),
      do: :ok,
      else: event |> Native.event_validate_types() |> finish(%{})
  end

  @doc """
  The external term size of `event.data` must be at most 1 000 000 bytes;
  otherwise `:data_too_large` with context `%{size: n, max_size: 1_000_000}`.
  """
  @spec validate_data_size(Event.t()) :: result()
  def validate_data_size(%Event{} = event) do
    case data_size(event.data) do
      size when size <= @max_data_size -> :ok
      size -> size |> Native.event_validate_data_size() |> finish(%{size: size})
    end
  end

  @doc """
  `:ok` for the known event types (`:function_entry`, `:config_updated`,
  `:test`, ...); `:invalid_event_type` with context
  `%{event_type: t, allowed_types: [...]}` for other atoms and
  `:type_mismatch` for non-atoms. `validate/1` does not call it.

      iex> ElixirScope.Foundation.Validation.EventValidator.validate_event_type(:spawn)
      :ok
  """
  @spec validate_event_type(term()) :: result()
  def validate_event_type(event_type) when event_type in @allowed_event_types, do: :ok

  def validate_event_type(event_type),
    do: event_type |> Native.event_validate_type() |> finish(%{event_type: event_type})

  @doc false
  # `validate/1` of an event whose `data` is known to take at most `bound`
  # bytes in external format: the external form of a decoded event was
  # `bound` bytes long, and its data's is a part of it. `external_size/1`
  # counts 3 more bytes per local fun than the encoding holds, at most a
  # few percent of the data's size, so up to `@bounded` the data certainly
  # passes the size rule and is not measured.
  @spec validate_bounded(Event.t(), non_neg_integer()) :: result()
  def validate_bounded(%Event{} = event, bound) when bound <= @bounded do
    if well_formed?(event), do: :ok, else: validate(event)
  end

  def validate_bounded(%Event{} = event, _bound), do: validate(event)

  @doc false
  # The constants the fast paths above use (a test compares them with the
  # core's own).
  def constants,
    do: %{allowed_event_types: @allowed_event_types, max_data_size: @max_data_size}

  defp well_formed?(%Event{
         event_id: id,
         event_type: type,
         timestamp: ts,
         wall_time: wall,
         node: node,
         pid: pid,
         correlation_id: cid,
         parent_id: parent
       })
       when required_set(id, type, ts) and optional_typed(wall, node, pid, cid, parent),
       do: true

  defp well_formed?(_event), do: false

  defp data_size(data) do
    TermSize.external_size(data)
  rescue
    _ -> 0
  end

  defp finish({:ok, :ok}, _facts), do: :ok

  defp finish({:error, {:data_too_large, _} = native}, %{size: size}) do
    %{max_data_size: max} = Native.validation_constants()
    {:error, Error.from_native(native, %{size: size, max_size: max})}
  end

  defp finish({:error, {:invalid_event_type, _} = native}, %{event_type: type}) do
    %{allowed_event_types: allowed} = Native.validation_constants()
    {:error, Error.from_native(native, %{event_type: type, allowed_types: allowed})}
  end

  defp finish({:error, native}, _facts), do: {:error, Error.from_native(native)}
end
