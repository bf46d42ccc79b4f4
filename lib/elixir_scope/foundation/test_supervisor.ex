defmodule ElixirScope.Foundation.TestSupervisor do
  @moduledoc """
  A `DynamicSupervisor` for service instances in isolated `{:test, ref}`
  namespaces (the library's counterpart of the original's
  `ElixirScope.TestSupport.TestSupervisor`). The application starts it when
  the `:test_mode` app env is true; a host can also start it
  in its own tree.

      ref = make_ref()
      {:ok, _pids} = TestSupervisor.start_isolated_services(ref)
      {:ok, pid} = ServiceRegistry.health_check({:test, ref}, :config_server)
      :ok = TestSupervisor.cleanup_namespace(ref)

  Services started here are reached by passing `namespace: {:test, ref}` to
  every call. For tests of code that calls the plain facades,
  `ElixirScope.Foundation.Sandbox` (or `use ElixirScope.Foundation.Case`) is
  simpler: it binds a fresh namespace to the test process, needs no
  `:test_mode`, and does not use this supervisor.
  """
  use DynamicSupervisor

  alias ElixirScope.Foundation.ProcessRegistry
  alias ElixirScope.Foundation.Services

  @services [
    {Services.ConfigServer, :config_server},
    {Services.EventStore, :event_store},
    {Services.TelemetryService, :telemetry_service}
  ]

  @doc "Starts the supervisor, registered under its module name."
  @spec start_link(keyword()) :: Supervisor.on_start()
  def start_link(opts \\ []), do: DynamicSupervisor.start_link(__MODULE__, opts, name: __MODULE__)

  @impl true
  def init(_opts), do: DynamicSupervisor.init(strategy: :one_for_one)

  @doc """
  Starts ConfigServer, EventStore and TelemetryService in `{:test, ref}`. Returns `{:ok, [pid]}` or the first
  `{:error, reason}`.
  """
  @spec start_isolated_services(reference()) :: {:ok, [pid()]} | {:error, term()}
  def start_isolated_services(ref) do
    @services
    |> Enum.reduce_while({:ok, []}, fn {module, _name}, {:ok, pids} ->
      case start_service(module, ref) do
        {:ok, pid} -> {:cont, {:ok, pids ++ [pid]}}
        {:error, _} = error -> {:halt, error}
      end
    end)
  end

  @doc "Starts one service module in `{:test, ref}` under this supervisor."
  @spec start_service(module(), reference()) :: {:ok, pid()} | {:error, term()}
  def start_service(module, ref) do
    spec = Supervisor.child_spec({module, [namespace: {:test, ref}]}, restart: :transient)

    case DynamicSupervisor.start_child(__MODULE__, spec) do
      {:ok, pid} -> {:ok, pid}
      {:error, {:already_started, pid}} -> {:ok, pid}
      {:error, _} = error -> error
    end
  end

  @doc "Terminates the services of `{:test, ref}` started here; always `:ok`."
  @spec cleanup_namespace(reference()) :: :ok
  def cleanup_namespace(ref) do
    for {_module, name} <- @services,
        {:ok, pid} <- [ProcessRegistry.lookup({:test, ref}, name)] do
      _ = DynamicSupervisor.terminate_child(__MODULE__, pid)
    end

    :ok
  end
end
