defmodule ElixirScope.Foundation.Services.Errors do
  @moduledoc false
  # The errors the three services (ConfigServer, EventStore, TelemetryService) share in shape:
  # "service unavailable" and "state reset forbidden". One table keeps each
  # service's code, message, severity and subcategory in one place.

  alias ElixirScope.Foundation.Types.Error

  @typedoc "A service name, as registered in ProcessRegistry."
  @type service :: :config_server | :event_store | :telemetry_service

  # service => {code, message, severity, subcategory}
  @unavailable %{
    config_server: {5000, "Configuration service not started", :high, :initialization},
    event_store: {3000, "Event store not available", :high, :availability},
    telemetry_service: {nil, "Telemetry service not started", :medium, :initialization}
  }

  @reset_forbidden_codes %{config_server: 5002, event_store: 3002, telemetry_service: 7002}

  @doc false
  @spec unavailable(service(), String.t() | nil) :: Error.t()
  def unavailable(service, message \\ nil) do
    {code, default_message, severity, subcategory} = Map.fetch!(@unavailable, service)

    Error.new(
      code: code,
      error_type: :service_unavailable,
      message: message || default_message,
      severity: severity,
      category: :system,
      subcategory: subcategory
    )
  end

  @doc false
  @spec reset_forbidden(service()) :: Error.t()
  def reset_forbidden(service) do
    Error.new(
      code: Map.fetch!(@reset_forbidden_codes, service),
      error_type: :operation_forbidden,
      message: "State reset only allowed in test mode",
      severity: :high,
      category: :security,
      subcategory: :authorization
    )
  end
end
