defmodule ElixirScope.Foundation.Types.Event do
  @moduledoc """
  An ElixirScope event.

  Events built by `ElixirScope.Foundation.Events.new_event/3` carry
  millisecond monotonic timestamps; `new/0,1` here defaults to native units
  (`System.monotonic_time/0`), as in the original.
  """

  @enforce_keys [:event_type, :event_id, :timestamp]
  defstruct [
    :event_type,
    :event_id,
    :timestamp,
    :wall_time,
    :node,
    :pid,
    :correlation_id,
    :parent_id,
    :data
  ]

  @typedoc "Unique positive event identifier."
  @type event_id :: pos_integer()

  @typedoc "Correlation identifier (a UUID string)."
  @type correlation_id :: String.t()

  @type t :: %__MODULE__{
          event_type: atom(),
          event_id: event_id(),
          timestamp: integer(),
          wall_time: DateTime.t() | nil,
          node: node() | nil,
          pid: pid() | nil,
          correlation_id: correlation_id() | nil,
          parent_id: event_id() | nil,
          data: term()
        }

  @doc """
  Builds an event. With a keyword list, the fields override the defaults
  `event_type: :default`, a unique positive `event_id` and a native-unit
  monotonic `timestamp`; unknown keys are ignored. With an atom, it is the
  event type (`new(:x)` is `new(event_type: :x)`).
  """
  @spec new() :: t()
  @spec new(keyword() | atom()) :: t()
  def new(fields_or_type \\ [])

  def new(fields) when is_list(fields) do
    defaults = [
      event_type: :default,
      event_id: System.unique_integer([:positive]),
      timestamp: System.monotonic_time()
    ]

    struct(__MODULE__, Keyword.merge(defaults, fields))
  end

  def new(event_type) when is_atom(event_type), do: new(event_type: event_type)

  @doc """
  An event with every field `nil`: deliberately invalid (useful in tests).
  """
  @spec empty() :: %__MODULE__{}
  def empty do
    %__MODULE__{event_type: nil, event_id: nil, timestamp: nil}
  end
end
