defmodule ElixirScope.Foundation.Validation.EventValidator do
  @moduledoc """
  Validates an `ElixirScope.Foundation.Types.Event`.

  The rules run in Rust (`foundation_core::validation::event`); the NIF only
  classifies the eight checked fields, and the size of `data` is its exact
  external term size, as `:erlang.external_size/1` gives it: small data
  (up to a few thousand terms, checked by a bounded walk) is measured with
  that BIF, bigger data on a dirty CPU scheduler, so a 1 MB `data` never
  holds a normal scheduler (the BIF does not yield; see
  `docs/architecture.md`, "Scheduler safety"). Errors are `%ElixirScope.Foundation.Types.Error{}`
  with category `:data`, subcategory `:validation`:

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

  alias ElixirScope.Foundation.{Error, Native, TermSize, Types}
  alias ElixirScope.Foundation.Types.Event

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
    size = data_size(event.data)
    event |> Native.event_validate(size) |> finish(%{size: size})
  end

  @doc "`event_id`, `event_type` and `timestamp` must not be `nil`."
  @spec validate_required_fields(Event.t()) :: result()
  def validate_required_fields(%Event{} = event),
    do: event |> Native.event_validate_required() |> finish(%{})

  @doc """
  Checks the type of every truthy field: positive integer ids, atom type and
  node, integer timestamp, `DateTime` wall time, pid, binary correlation id.
  """
  @spec validate_field_types(Event.t()) :: result()
  def validate_field_types(%Event{} = event),
    do: event |> Native.event_validate_types() |> finish(%{})

  @doc """
  The external term size of `event.data` must be at most 1 000 000 bytes;
  otherwise `:data_too_large` with context `%{size: n, max_size: 1_000_000}`.
  """
  @spec validate_data_size(Event.t()) :: result()
  def validate_data_size(%Event{} = event) do
    size = data_size(event.data)
    size |> Native.event_validate_data_size() |> finish(%{size: size})
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
  def validate_event_type(event_type),
    do: event_type |> Native.event_validate_type() |> finish(%{event_type: event_type})

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
