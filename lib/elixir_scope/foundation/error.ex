defmodule ElixirScope.Foundation.Error do
  @moduledoc """
  Structured errors with a code table, retry strategies, recovery actions and
  escalation rules.

  `new/3` looks up the error type in the table below (unknown types get code
  9999). Services, validators and logic modules return the plain
  `ElixirScope.Foundation.Types.Error` instead; `from_native/2` is the one
  place that turns a native `{kind, detail}` error into that struct.

  | error_type | code | category/subcategory | severity |
  |---|---|---|---|
  | `:invalid_config_structure` | 1101 | config/structure | high |
  | `:missing_required_field` | 1102 | config/structure | high |
  | `:invalid_config_value` | 1201 | config/validation | medium |
  | `:constraint_violation` | 1202 | config/validation | medium |
  | `:range_error` | 1203 | config/validation | low |
  | `:config_not_found` | 1301 | config/access | high |
  | `:config_update_forbidden` | 1401 | config/runtime | medium |
  | `:initialization_failed` | 2101 | system/initialization | critical |
  | `:service_unavailable` | 2102 | system/initialization | high |
  | `:resource_exhausted` | 2201 | system/resources | high |
  | `:dependency_failed` | 2301 | system/dependencies | high |
  | `:internal_error` | 2401 | system/runtime | critical |
  | `:serialization_failed` | 3101 | data/serialization | medium |
  | `:deserialization_failed` | 3102 | data/serialization | medium |
  | `:type_mismatch` | 3201 | data/validation | low |
  | `:format_error` | 3202 | data/validation | low |
  | `:validation_failed` | 3203 | data/validation | medium |
  | `:invalid_input` | 3204 | data/validation | low |
  | `:data_corruption` | 3301 | data/corruption | critical |
  | `:data_not_found` | 3401 | data/not_found | low |
  | `:network_error` | 4101 | external/network | medium |
  | `:external_service_error` | 4201 | external/service | medium |
  | `:timeout` | 4301 | external/timeout | medium |
  | `:authentication_failed` | 4401 | external/auth | high |
  """

  alias ElixirScope.Foundation.Types

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

  # error_type => {code, category, subcategory, severity, default message}
  @table %{
    invalid_config_structure:
      {1101, :config, :structure, :high, "Configuration structure is invalid"},
    missing_required_field:
      {1102, :config, :structure, :high, "Required configuration field missing"},
    invalid_config_value:
      {1201, :config, :validation, :medium, "Configuration value failed validation"},
    constraint_violation:
      {1202, :config, :validation, :medium, "Configuration constraint violated"},
    range_error: {1203, :config, :validation, :low, "Value outside acceptable range"},
    config_not_found: {1301, :config, :access, :high, "Configuration not found"},
    config_update_forbidden:
      {1401, :config, :runtime, :medium, "Configuration update not allowed"},
    initialization_failed:
      {2101, :system, :initialization, :critical, "System initialization failed"},
    service_unavailable: {2102, :system, :initialization, :high, "Required service unavailable"},
    resource_exhausted: {2201, :system, :resources, :high, "System resources exhausted"},
    dependency_failed: {2301, :system, :dependencies, :high, "Required dependency failed"},
    internal_error: {2401, :system, :runtime, :critical, "Internal system error"},
    serialization_failed: {3101, :data, :serialization, :medium, "Data serialization failed"},
    deserialization_failed: {3102, :data, :serialization, :medium, "Data deserialization failed"},
    type_mismatch: {3201, :data, :validation, :low, "Data type mismatch"},
    format_error: {3202, :data, :validation, :low, "Data format error"},
    validation_failed: {3203, :data, :validation, :medium, "Data validation failed"},
    invalid_input: {3204, :data, :validation, :low, "Invalid input provided"},
    data_corruption: {3301, :data, :corruption, :critical, "Data corruption detected"},
    data_not_found: {3401, :data, :not_found, :low, "Requested data not found"},
    network_error: {4101, :external, :network, :medium, "Network communication error"},
    external_service_error: {4201, :external, :service, :medium, "External service error"},
    timeout: {4301, :external, :timeout, :medium, "Operation timeout"},
    authentication_failed: {4401, :external, :auth, :high, "Authentication failed"}
  }

  @unknown {9999, :unknown, :unknown, :medium, "Unknown error"}

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
    {code, category, subcategory, severity, default_message} =
      Map.get(@table, error_type, @unknown)

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

  # native error kinds => {error_type, code, severity, category, subcategory}
  @native_kinds %{
    config_validation_failed: {:validation_failed, 1001, :medium, :config, :validation},
    invalid_config_value: {:invalid_config_value, 1002, :medium, :config, :validation},
    invalid_ai_provider: {:invalid_config_value, 1002, :medium, :config, :validation},
    constraint_violation: {:constraint_violation, 1003, :high, :config, :validation},
    range_error: {:range_error, 1004, :high, :config, :validation},
    validation_failed: {:validation_failed, 2001, :high, :data, :validation},
    type_mismatch: {:type_mismatch, 2002, :medium, :data, :validation},
    data_too_large: {:data_too_large, 2003, :high, :data, :validation},
    invalid_event_type: {:invalid_event_type, 2004, :medium, :data, :validation},
    invalid_input: {:invalid_input, 3204, :low, :data, :validation},
    internal_error: {:internal_error, 2401, :critical, :system, :runtime},
    queue_full: {:resource_exhausted, 2201, :high, :system, :resources},
    # A store closed by its service's normal stop: EventStore's unavailable error.
    store_closed: {:service_unavailable, 3000, :high, :system, :availability}
  }

  @doc """
  Turns a native `{kind, detail}` error into `%Types.Error{}` with the code,
  severity and category the contract gives that kind; `detail` becomes the
  message and `context` the context. Unknown kinds become `:internal_error`.
  """
  @spec from_native({atom(), String.t()}, map()) :: Types.Error.t()
  def from_native({kind, detail}, context \\ %{}) do
    {error_type, code, severity, category, subcategory} =
      Map.get(@native_kinds, kind, @native_kinds.internal_error)

    Types.Error.new(
      code: code,
      error_type: error_type,
      message: detail,
      severity: severity,
      context: context,
      category: category,
      subcategory: subcategory
    )
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
