defmodule ElixirScope.Foundation.Application do
  @moduledoc false
  # Before the children: the NIFs' scheduling constants (Native.Route).
  # Children, in order, under ElixirScope.Foundation.Supervisor (one_for_one):
  #   ProcessRegistry.Owner        owns the registry's backup/waiter ETS tables
  #   ProcessRegistry (Registry)   via-tuple names
  #   Cluster                      the :pg scope the :production services join
  #   ConfigServer.Table           owns the published-config ETS table
  #   ConfigServer, EventStore, TelemetryService   namespace :production
  #     (EventStore.ReadGate, before EventStore: turns for long reads)
  #   ElixirScope.Foundation.TaskSupervisor
  #   Config.GracefulDegradation.Owner   fallback cache + periodic jobs
  #   TestSupervisor               only when :test_mode is true at start
  # A configuration the config server would reject stops the start here, with
  # the offending key named (the server's own error cannot name it).
  use Application

  require Logger

  alias ElixirScope.Foundation.Config.GracefulDegradation
  alias ElixirScope.Foundation.Env
  alias ElixirScope.Foundation.ProcessRegistry
  alias ElixirScope.Foundation.Services

  @impl true
  def start(_type, _args) do
    case Env.check_config() do
      :ok ->
        :ok = ElixirScope.Foundation.Native.Route.load()
        start_supervisor()

      {:error, message} ->
        Logger.error("ElixirScope.Foundation not started: " <> message)
        {:error, {:invalid_config, message}}
    end
  end

  defp start_supervisor do
    children =
      [
        ProcessRegistry.Owner,
        {ProcessRegistry, []},
        ElixirScope.Foundation.Cluster,
        Services.ConfigServer.Table,
        {Services.ConfigServer, [namespace: :production]},
        Services.EventStore.ReadGate,
        {Services.EventStore, [namespace: :production]},
        {Services.TelemetryService, [namespace: :production]},
        {Task.Supervisor, name: ElixirScope.Foundation.TaskSupervisor},
        GracefulDegradation.Owner
      ] ++ test_children()

    Supervisor.start_link(children,
      strategy: :one_for_one,
      name: ElixirScope.Foundation.Supervisor
    )
  end

  defp test_children do
    if Env.get(:test_mode, false),
      do: [ElixirScope.Foundation.TestSupervisor],
      else: []
  end

  @impl true
  def stop(_state), do: :ok
end
