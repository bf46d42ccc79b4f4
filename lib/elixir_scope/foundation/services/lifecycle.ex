defmodule ElixirScope.Foundation.Services.Lifecycle do
  @moduledoc false
  # Start, stop, presence and test-mode checks shared by ConfigServer,
  # EventStore and TelemetryService.
  #
  # `use ElixirScope.Foundation.Services.Lifecycle, service: name, doc: text`
  # defines `start_link/1` in the service: the service registers under
  # `ProcessRegistry.via_tuple(namespace, name)` and an invalid namespace
  # gives `{:error, {:invalid_namespace, namespace}}` without starting
  # anything. `start_link/1` is generated in each service rather than
  # exported from here, so no public function starts an arbitrary module.
  #
  # Options:
  #   * `:service` (required) - the registry name of the service
  #   * `:doc` (required) - the `@doc` of the generated `start_link/1`
  #   * `:default_namespace` - how a missing `:namespace` option resolves:
  #     `:production` (the default) or `:sandbox` (`Sandbox.namespace/1`:
  #     the caller's sandbox, else `:production`)

  alias ElixirScope.Foundation.{ProcessRegistry, ServiceRegistry}

  defmacro __using__(opts) do
    service = Keyword.fetch!(opts, :service)
    doc = Keyword.fetch!(opts, :doc)

    namespace =
      case Keyword.get(opts, :default_namespace, :production) do
        :production ->
          quote do: Keyword.get(opts, :namespace, :production)

        :sandbox ->
          quote do: ElixirScope.Foundation.Sandbox.namespace(opts)
      end

    quote do
      @doc unquote(doc)
      @spec start_link(keyword()) :: GenServer.on_start()
      def start_link(opts \\ []) do
        namespace = unquote(namespace)
        opts = Keyword.put(opts, :namespace, namespace)

        if ElixirScope.Foundation.ProcessRegistry.namespace?(namespace) do
          GenServer.start_link(__MODULE__, opts,
            name: ElixirScope.Foundation.ProcessRegistry.via_tuple(namespace, unquote(service))
          )
        else
          {:error, {:invalid_namespace, namespace}}
        end
      end
    end
  end

  @doc "Whether the `:test_mode` app env is set (reset functions require it)."
  @spec test_mode?() :: as_boolean(term())
  def test_mode?, do: ElixirScope.Foundation.Env.get(:test_mode, false)

  @doc "Whether `service` is registered and alive in `namespace` (a registry lookup)."
  @spec registered?(ProcessRegistry.namespace(), ProcessRegistry.service_name()) :: boolean()
  def registered?(namespace, service),
    do: match?({:ok, _}, ServiceRegistry.lookup(namespace, service))

  @doc """
  Stops `service` of `namespace`; `:ok` also when it is not running or stops
  between the lookup and the stop.
  """
  @spec stop(ProcessRegistry.namespace(), ProcessRegistry.service_name()) :: :ok
  def stop(namespace, service) do
    case ProcessRegistry.lookup(namespace, service) do
      {:ok, pid} -> GenServer.stop(pid)
      :error -> :ok
    end
  catch
    :exit, _ -> :ok
  end
end
