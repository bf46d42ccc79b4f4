defmodule ElixirScope.Foundation.Services.ConfigServer.Audit do
  @moduledoc false
  # ConfigServer's side effects after an update or reset: the audit event,
  # handed to the EventStore of the server's own namespace without waiting
  # (`EventStore.store_async/2`), and the telemetry counter, recorded in the
  # TelemetryService of the same namespace. Runs inside the ConfigServer
  # process, on its state map, whose `audit` field (`%{sent, failures,
  # skipped}`) it owns. Never waits for or crashes on the other services.

  require Logger

  alias ElixirScope.Foundation.Logic.EventLogic
  alias ElixirScope.Foundation.ProcessRegistry
  alias ElixirScope.Foundation.Services.{EventStore, TelemetryService}

  @doc "The audit counters of a fresh state."
  def fields, do: %{audit: %{sent: 0, failures: 0, skipped: 0}}

  @doc "Hands the audit event `type` with `data` off and counts the outcome."
  def event(%{} = state, type, data) do
    outcome =
      if ProcessRegistry.registered?(state.namespace, :event_store),
        do: hand_off(type, data, state.namespace),
        else: :skipped

    case outcome do
      :ok -> bump(state, :sent)
      :skipped -> bump(state, :skipped)
      {:failed, reason} -> state |> log_failure(type, reason) |> bump(:failures)
    end
  end

  @doc "Counter `name` (value 1) in `namespace`'s TelemetryService; never raises."
  def count(namespace, name, metadata) do
    TelemetryService.emit_counter(name, 1, metadata, namespace: namespace)
  catch
    _, _ -> :ok
  end

  defp bump(state, key), do: %{state | audit: Map.update!(state.audit, key, &(&1 + 1))}

  # Failures are counted in status/0; the log gets the 1st, 101st, ... only,
  # so an EventStore outage does not flood it.
  defp log_failure(state, type, reason) do
    n = state.audit.failures

    if rem(n, 100) == 0,
      do:
        Logger.warning(
          "ConfigServer audit event #{type} not handed off (#{n + 1} failures so far): #{inspect(reason)}"
        )

    state
  end

  defp hand_off(type, data, namespace) do
    with {:ok, event} <- EventLogic.create_event(type, data),
         :ok <- EventStore.store_async(event, namespace: namespace) do
      :ok
    else
      other -> {:failed, other}
    end
  catch
    kind, reason -> {:failed, {kind, reason}}
  end
end
