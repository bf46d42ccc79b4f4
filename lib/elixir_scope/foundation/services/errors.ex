defmodule ElixirScope.Foundation.Services.Errors do
  @moduledoc false
  # The errors the three services (ConfigServer, EventStore, TelemetryService) share in shape:
  # "service unavailable" and "state reset forbidden". Codes, messages,
  # severities and subcategories come from ElixirScope.Foundation.ErrorTable.

  alias ElixirScope.Foundation.ErrorTable
  alias ElixirScope.Foundation.Types.Error

  @typedoc "A service name, as registered in ProcessRegistry."
  @type service :: :config_server | :event_store | :telemetry_service

  @doc false
  @spec unavailable(service(), String.t() | nil) :: Error.t()
  def unavailable(service, message \\ nil) do
    fields = ErrorTable.named({:unavailable, service})
    Error.new(if message, do: Keyword.put(fields, :message, message), else: fields)
  end

  @doc false
  @spec reset_forbidden(service()) :: Error.t()
  def reset_forbidden(service), do: Error.new(ErrorTable.named({:reset_forbidden, service}))
end
