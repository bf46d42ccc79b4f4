defmodule ElixirScope.Foundation.Types.Error do
  @moduledoc """
  The error struct returned by every service, validator and logic module:
  `{:error, %ElixirScope.Foundation.Types.Error{}}`.

  Plain data: `new/1` does no lookup (compare `ElixirScope.Foundation.Error`,
  which fills fields from its code table). Both structs have the same fields.
  """

  @enforce_keys [:code, :error_type, :message, :severity]
  defstruct [
    :code,
    :error_type,
    :message,
    :severity,
    :context,
    :correlation_id,
    :timestamp,
    :stacktrace,
    :category,
    :subcategory,
    :retry_strategy,
    :recovery_actions
  ]

  @typedoc "How bad the error is."
  @type severity :: :low | :medium | :high | :critical

  @type t :: %__MODULE__{
          code: pos_integer() | nil,
          error_type: atom() | nil,
          message: String.t() | nil,
          severity: severity() | nil,
          context: map() | nil,
          correlation_id: String.t() | nil,
          timestamp: DateTime.t() | nil,
          stacktrace: list() | nil,
          category: atom() | nil,
          subcategory: atom() | nil,
          retry_strategy: atom() | nil,
          recovery_actions: [String.t()] | nil
        }

  @doc """
  Builds an error from `fields`, over the defaults `timestamp: DateTime.utc_now()`,
  `context: %{}` and `recovery_actions: []`.

  Like the original it does not check required keys and ignores unknown ones.

      iex> e = ElixirScope.Foundation.Types.Error.new(code: 1, error_type: :x, message: "m", severity: :low)
      iex> {e.code, e.context, e.recovery_actions}
      {1, %{}, []}
  """
  @spec new(keyword()) :: t()
  def new(fields \\ []) do
    defaults = [timestamp: DateTime.utc_now(), context: %{}, recovery_actions: []]
    struct(__MODULE__, Keyword.merge(defaults, fields))
  end
end
