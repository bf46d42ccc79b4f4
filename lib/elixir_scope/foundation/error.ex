defmodule ElixirScope.Foundation.Error do
  @moduledoc """
  Structured errors with a code table, retry strategies, recovery actions and
  escalation rules.

  `new/3` looks up the error type in the table below (unknown types get code
  9999). Services, validators and logic modules return the plain
  `ElixirScope.Foundation.Types.Error` instead; `from_native/2` is the one
  place that turns a native `{kind, detail}` error into that struct.

  #{ElixirScope.Foundation.ErrorTable.structured_markdown()}
  """

  alias ElixirScope.Foundation.{ErrorTable, Types}

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

  @typedoc "Error code from the table (9999 for unknown types)."
  @type error_code :: pos_integer()
  @typedoc "Error type atom."
  @type error_type :: atom()
  @typedoc "Severity."
  @type severity :: :low | :medium | :high | :critical
  @typedoc "Error category."
  @type category :: :config | :system | :data | :external | :unknown
  @typedoc "How (and whether) to retry."
  @type retry_strategy :: :no_retry | :immediate | :fixed_delay | :exponential_backoff

  @type t :: %__MODULE__{
          code: error_code(),
          error_type: error_type(),
          message: String.t(),
          severity: severity(),
          context: map() | nil,
          correlation_id: String.t() | nil,
          timestamp: DateTime.t() | nil,
          stacktrace: [map() | String.t()] | nil,
          category: category(),
          subcategory: atom(),
          retry_strategy: retry_strategy(),
          recovery_actions: [String.t()]
        }

  @recovery_actions %{
    config_not_found: ["Check configuration file", "Verify configuration path"],
    invalid_config_value: [
      "Check configuration format",
      "Validate against schema",
      "Review documentation"
    ],
    service_unavailable: [
      "Check service health",
      "Verify network connectivity",
      "Review service logs"
    ],
    resource_exhausted: [
      "Check memory usage",
      "Review resource limits",
      "Scale resources if needed"
    ],
    network_error: ["Check network connectivity", "Retry with exponential backoff"],
    timeout: [
      "Increase timeout value",
      "Check network latency",
      "Review service performance"
    ],
    data_corruption: ["Restore from backup", "Contact system administrator"]
  }

  @default_actions [
    "Check logs for details",
    "Review error context",
    "Contact support if needed"
  ]

  @doc """
  Builds an error of `error_type`, filling code, category, severity, default
  message, retry strategy and recovery actions from the table. Never raises
  for unknown types (they get code 9999).

  Options:

    * `:context` - map of details (default `%{}`; an explicit `nil` is kept)
    * `:correlation_id` - correlation id to attach
    * `:stacktrace` - a stacktrace; the first 10 entries are kept, MFA
      entries become maps, others `inspect` strings

      iex> e = ElixirScope.Foundation.Error.new(:timeout)
      iex> {e.code, e.message, e.retry_strategy}
      {4301, "Operation timeout", :exponential_backoff}
  """
  @spec new(error_type(), String.t() | nil, keyword()) :: t()
  def new(error_type, message \\ nil, opts \\ []) do
    {code, category, subcategory, severity, default_message} = ErrorTable.structured(error_type)

    %__MODULE__{
      code: code,
      error_type: error_type,
      message: message || default_message,
      severity: severity,
      context: Keyword.get(opts, :context, %{}),
      correlation_id: Keyword.get(opts, :correlation_id),
      timestamp: DateTime.utc_now(),
      stacktrace: format_stacktrace(Keyword.get(opts, :stacktrace)),
      category: category,
      subcategory: subcategory,
      retry_strategy: retry_strategy(error_type, severity),
      recovery_actions: recovery_actions(error_type, Keyword.get(opts, :context))
    }
  end

  @doc "`{:error, new(error_type, message, opts)}`."
  @spec error_result(error_type(), String.t() | nil, keyword()) :: {:error, t()}
  def error_result(error_type, message \\ nil, opts \\ []) do
    {:error, new(error_type, message, opts)}
  end

  @doc """
  Wraps the error of a failed result.

  An `{:error, %Error{}}` keeps its type, message and code and gains
  `wrapped_by`, `wrapper_message` and `wrapper_context` in its context. Any
  other `{:error, reason}` becomes a new error of `error_type` whose context
  holds `original_reason`. Other values are returned unchanged.
  """
  @spec wrap_error(term(), error_type(), String.t() | nil, keyword()) :: term()
  def wrap_error(result, error_type, message \\ nil, opts \\ [])

  def wrap_error({:error, %__MODULE__{} = error}, error_type, message, opts) do
    wrapper = %{
      wrapped_by: error_type,
      wrapper_message: message,
      wrapper_context: Keyword.get(opts, :context) || %{}
    }

    {:error, %{error | context: Map.merge(error.context || %{}, wrapper)}}
  end

  def wrap_error({:error, reason}, error_type, message, opts) do
    context = Map.merge(Keyword.get(opts, :context) || %{}, %{original_reason: reason})
    error_result(error_type, message, Keyword.put(opts, :context, context))
  end

  def wrap_error(result, _error_type, _message, _opts), do: result

  @doc "True unless the retry strategy is `:no_retry`."
  @spec is_retryable?(t()) :: boolean()
  def is_retryable?(%__MODULE__{retry_strategy: strategy}), do: strategy != :no_retry

  @doc """
  Milliseconds to wait before retry `attempt` (0-based): exponential backoff
  doubles from 1000 up to 30 000, fixed delay is 1000, immediate is 0 and
  `:no_retry` is `:infinity`.
  """
  @spec retry_delay(t(), non_neg_integer()) :: non_neg_integer() | :infinity
  def retry_delay(%__MODULE__{retry_strategy: :exponential_backoff}, attempt)
      when is_number(attempt) do
    # 2^5 * 1000 already exceeds the cap: clamping the exponent gives the same
    # values and keeps :math.pow from overflowing on huge attempt numbers.
    round(min(1000 * :math.pow(2, min(attempt, 5)), 30_000))
  end

  def retry_delay(%__MODULE__{retry_strategy: :fixed_delay}, _attempt), do: 1000
  def retry_delay(%__MODULE__{retry_strategy: :immediate}, _attempt), do: 0
  def retry_delay(%__MODULE__{retry_strategy: :no_retry}, _attempt), do: :infinity

  @doc "True for `:high` and `:critical` errors."
  @spec should_escalate?(t()) :: boolean()
  def should_escalate?(%__MODULE__{severity: severity}), do: severity in [:high, :critical]

  @doc """
  `"[code:type] message | Context: ... | Severity: s"` (the context part only
  when the context is not empty).
  """
  @spec to_string(t()) :: String.t()
  def to_string(%__MODULE__{} = error) do
    base = "[#{error.code}:#{error.error_type}] #{error.message}"

    context =
      if map_size(error.context) > 0,
        do: " | Context: #{inspect(error.context, limit: 3)}",
        else: ""

    base <> context <> " | Severity: #{error.severity}"
  end

  @doc """
  Emits the counter `[:foundation, :errors, category, subcategory]` with
  metadata `%{error_type, severity, code}` through the Telemetry facade.
  """
  @spec collect_error_metrics(t()) :: :ok
  def collect_error_metrics(%__MODULE__{} = error) do
    name = [:foundation, :errors, error.category, error.subcategory]
    metadata = %{error_type: error.error_type, severity: error.severity, code: error.code}
    ElixirScope.Foundation.Telemetry.emit_counter(name, metadata)
  end

  @doc """
  Turns a native `{kind, detail}` error into `%Types.Error{}` with the code,
  severity and category the contract gives that kind; `detail` becomes the
  message and `context` the context. Unknown kinds become `:internal_error`.
  """
  @spec from_native({atom(), String.t()}, map()) :: Types.Error.t()
  def from_native({kind, detail}, context \\ %{}) do
    Types.Error.new(ErrorTable.native(kind) ++ [message: detail, context: context])
  end

  # Retry strategy by error type, then severity; the first matching clause wins.
  defp retry_strategy(type, _severity) when type in [:timeout, :network_error],
    do: :exponential_backoff

  defp retry_strategy(:external_service_error, _severity), do: :fixed_delay
  defp retry_strategy(_type, :critical), do: :no_retry
  defp retry_strategy(_type, :high), do: :immediate
  defp retry_strategy(:invalid_config_value, _severity), do: :no_retry
  defp retry_strategy(:data_corruption, _severity), do: :no_retry
  defp retry_strategy(:resource_exhausted, _severity), do: :immediate
  defp retry_strategy(_type, _severity), do: :fixed_delay

  defp recovery_actions(error_type, context) do
    actions = Map.get(@recovery_actions, error_type, @default_actions)

    case context do
      %{operation: operation} ->
        actions ++ ["Review #{operation_label(operation)} implementation"]

      _ ->
        actions
    end
  end

  # new/3 never raises: an operation without String.Chars is shown inspected.
  defp operation_label(operation) do
    String.Chars.to_string(operation)
  rescue
    _ -> inspect(operation)
  end

  defp format_stacktrace(nil), do: nil

  defp format_stacktrace(stacktrace) when is_list(stacktrace) do
    stacktrace
    |> Enum.take(10)
    |> Enum.map(fn
      {module, function, arity, location} when is_list(location) ->
        %{
          module: module,
          function: function,
          arity: arity,
          file: location[:file],
          line: location[:line]
        }

      entry ->
        inspect(entry)
    end)
  end

  defp format_stacktrace(other), do: [inspect(other)]
end
