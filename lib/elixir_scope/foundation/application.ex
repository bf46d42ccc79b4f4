defmodule ElixirScope.Foundation.Application do
  @moduledoc false
  use Application

  alias ElixirScope.Foundation.Services

  # TEMPORARY (integration scaffolding): services are started only once their
  # module exists, so branches can land one by one. Removed at integration.
  @services [Services.ConfigServer, Services.EventStore, Services.TelemetryService]

  @impl true
  def start(_type, _args) do
    services =
      for service <- @services, Code.ensure_loaded?(service) do
        {service, [namespace: :production]}
      end

    children =
      [{ElixirScope.Foundation.ProcessRegistry, []}] ++
        services ++
        [{Task.Supervisor, name: ElixirScope.Foundation.TaskSupervisor}]

    Supervisor.start_link(children,
      strategy: :one_for_one,
      name: ElixirScope.Foundation.Supervisor
    )
  end

  @impl true
  def stop(_state), do: :ok
end
