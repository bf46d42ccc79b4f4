defmodule ElixirScope.Foundation.ErrorTable do
  @moduledoc false
  # The one table of error codes, categories and severities. Both error
  # structs read it: `ElixirScope.Foundation.Error.new/3` looks up its
  # structured error types, `Error.from_native/2` its native error kinds, and
  # the services, the registry and the event store build their plain
  # `Types.Error` from the named entries.

  @typedoc "`{code, category, subcategory, severity, default message}`."
  @type entry :: {pos_integer(), atom(), atom(), atom(), String.t()}

  # Structured error types (ElixirScope.Foundation.Error.new/3):
  # error_type => {code, category, subcategory, severity, default message}
  @structured %{
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

  # Plain errors built by services, the registry and the event store:
  # name => {code, error_type, category, subcategory, severity, default message}
  @named %{
    {:unavailable, :config_server} =>
      {5000, :service_unavailable, :system, :initialization, :high,
       "Configuration service not started"},
    {:unavailable, :event_store} =>
      {3000, :service_unavailable, :system, :availability, :high, "Event store not available"},
    {:unavailable, :telemetry_service} =>
      {nil, :service_unavailable, :system, :initialization, :medium,
       "Telemetry service not started"},
    {:reset_forbidden, :config_server} =>
      {5002, :operation_forbidden, :security, :authorization, :high,
       "State reset only allowed in test mode"},
    {:reset_forbidden, :event_store} =>
      {3002, :operation_forbidden, :security, :authorization, :high,
       "State reset only allowed in test mode"},
    {:reset_forbidden, :telemetry_service} =>
      {7002, :operation_forbidden, :security, :authorization, :high,
       "State reset only allowed in test mode"},
    :service_not_found =>
      {5001, :service_not_found, :system, :discovery, :medium, "Service not found"},
    :event_not_found => {3001, :not_found, :data, :retrieval, :low, "Event not found"},
    :streaming_disabled =>
      {3003, :operation_forbidden, :security, :authorization, :medium,
       "Subscriptions are disabled (interface.enable_streaming is false)"}
  }

  # Native error kinds ({kind, detail} from the NIF) =>
  # {code, error_type, category, subcategory, severity}
  @native %{
    config_validation_failed: {1001, :validation_failed, :config, :validation, :medium},
    invalid_config_value: {1002, :invalid_config_value, :config, :validation, :medium},
    invalid_ai_provider: {1002, :invalid_config_value, :config, :validation, :medium},
    constraint_violation: {1003, :constraint_violation, :config, :validation, :high},
    range_error: {1004, :range_error, :config, :validation, :high},
    validation_failed: {2001, :validation_failed, :data, :validation, :high},
    type_mismatch: {2002, :type_mismatch, :data, :validation, :medium},
    data_too_large: {2003, :data_too_large, :data, :validation, :high},
    invalid_event_type: {2004, :invalid_event_type, :data, :validation, :medium},
    invalid_input: {3204, :invalid_input, :data, :validation, :low},
    internal_error: {2401, :internal_error, :system, :runtime, :critical},
    queue_full: {2201, :resource_exhausted, :system, :resources, :high}
  }

  # A store closed by its service's normal stop answers like the event store
  # being unavailable.
  @native_aliases %{store_closed: {:unavailable, :event_store}}

  @doc false
  @spec structured_markdown() :: String.t()
  def structured_markdown do
    rows =
      @structured
      |> Enum.sort_by(fn {_type, {code, _, _, _, _}} -> code end)
      |> Enum.map(fn {type, {code, category, subcategory, severity, _message}} ->
        "| `#{inspect(type)}` | #{code} | #{category}/#{subcategory} | #{severity} |\n"
      end)

    "| error_type | code | category/subcategory | severity |\n|---|---|---|---|\n" <>
      Enum.join(rows)
  end

  @doc false
  @spec structured(atom()) :: entry()
  def structured(error_type), do: Map.get(@structured, error_type, @unknown)

  @doc false
  @spec named(term()) :: keyword()
  def named(name) do
    {code, error_type, category, subcategory, severity, message} = Map.fetch!(@named, name)

    [
      code: code,
      error_type: error_type,
      message: message,
      severity: severity,
      category: category,
      subcategory: subcategory
    ]
  end

  @doc false
  @spec native(atom()) :: keyword()
  def native(kind) do
    case Map.fetch(@native_aliases, kind) do
      {:ok, name} ->
        Keyword.delete(named(name), :message)

      :error ->
        {code, error_type, category, subcategory, severity} =
          Map.get(@native, kind, @native.internal_error)

        [
          code: code,
          error_type: error_type,
          severity: severity,
          category: category,
          subcategory: subcategory
        ]
    end
  end
end
