defmodule ElixirScope.Foundation do
  @moduledoc """
  Top-level facade of the foundation layer: readiness and lifecycle of the
  three services (Config, Events, Telemetry).

  The services run under `ElixirScope.Foundation.Supervisor`, started by the
  `:elixir_scope_foundation` application. Fixed from the original:
  `available?/0` is true when all three services run, `shutdown/0` really
  stops the supervisor, `version/0` reports this library's version, and
  `initialize/1` never links an unsupervised service to the caller.

  ## Namespaces

  `initialize/1`, `status/1`, `available?/1` and `health/1` take
  `namespace:` in their options; without it, the namespace is the caller's
  sandbox (`ElixirScope.Foundation.Sandbox`), else `:production`.
  `version/0` and `shutdown/0` concern the whole library.
  """

  alias ElixirScope.Foundation.{Config, Events, Telemetry}

  @doc """
  Ensures the foundation runs: starts the application if needed, then
  `Config.initialize(opts[:config] || [])`, `Events.initialize()`,
  `Telemetry.initialize()` (each restarts its service under the supervisor if
  missing). Returns `:ok` or the first error. `opts[:namespace]` names the
  namespace (see the moduledoc).
  """
  @spec initialize(keyword()) :: :ok | {:error, term()}
  def initialize(opts \\ []) do
    ns = namespace_opts(opts)

    with {:ok, _} <- Application.ensure_all_started(:elixir_scope_foundation),
         :ok <- Config.initialize(Keyword.get(opts, :config, []) ++ ns),
         :ok <- Events.initialize(ns) do
      Telemetry.initialize(ns)
    end
  end

  @doc """
  `{:ok, %{config: map, events: map, telemetry: map}}` or the first error;
  `opts` may name the `namespace:`.
  """
  @spec status(keyword()) ::
          {:ok, %{config: map(), events: map(), telemetry: map()}} | {:error, term()}
  def status(opts \\ []) do
    ns = namespace_opts(opts)

    with {:ok, config} <- Config.status(ns),
         {:ok, events} <- Events.status(ns),
         {:ok, telemetry} <- Telemetry.status(ns) do
      {:ok, %{config: config, events: events, telemetry: telemetry}}
    end
  end

  @doc "Whether Config, Events and Telemetry are all available; `opts` may name the `namespace:`."
  @spec available?(keyword()) :: boolean()
  def available?(opts \\ []) do
    ns = namespace_opts(opts)
    Config.available?(ns) and Events.available?(ns) and Telemetry.available?(ns)
  end

  # The namespace resolved once, so the three services of one call agree.
  defp namespace_opts(opts), do: [namespace: ElixirScope.Foundation.Sandbox.namespace(opts)]

  @doc "This library's version (`\"\"` when the application is not loaded)."
  @spec version() :: String.t()
  def version, do: to_string(Application.spec(:elixir_scope_foundation, :vsn) || "")

  @doc """
  Stops `ElixirScope.Foundation.Supervisor` and with it every service (by
  stopping the `:elixir_scope_foundation` application when it runs).
  `initialize/1` starts it again. Always `:ok`.
  """
  @spec shutdown() :: :ok
  def shutdown do
    case Process.whereis(ElixirScope.Foundation.Supervisor) do
      nil ->
        :ok

      pid ->
        _ =
          if running?(),
            do: Application.stop(:elixir_scope_foundation),
            else: Supervisor.stop(pid)

        :ok
    end
  end

  defp running? do
    Enum.any?(Application.started_applications(), &match?({:elixir_scope_foundation, _, _}, &1))
  end

  @doc """
  `{:ok, %{status: :healthy | :degraded, timestamp: mono_ms, services: map,
  foundation_available: boolean, elixir_version, otp_release}}` (`:healthy`
  iff every service status map has `status: :running`), or the first error.
  `opts` may name the `namespace:`.
  """
  @spec health(keyword()) :: {:ok, map()} | {:error, term()}
  def health(opts \\ []) do
    ns = namespace_opts(opts)

    with {:ok, services} <- status(ns) do
      healthy = Enum.all?(services, fn {_name, s} -> Map.get(s, :status) == :running end)

      {:ok,
       %{
         status: if(healthy, do: :healthy, else: :degraded),
         timestamp: System.monotonic_time(:millisecond),
         services: services,
         foundation_available: available?(ns),
         elixir_version: System.version(),
         otp_release: System.otp_release()
       }}
    end
  end
end
