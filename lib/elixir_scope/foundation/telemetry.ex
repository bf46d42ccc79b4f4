defmodule ElixirScope.Foundation.Telemetry do
  @moduledoc """
  Public telemetry API: delegates to
  `ElixirScope.Foundation.Services.TelemetryService` and adds helpers for
  function timing, performance gauges and system-event counters.

  Recording runs in the caller's process (a NIF call) and never raises; see
  `ElixirScope.Foundation.Services.TelemetryService` for the recording rules
  and the `:telemetry` forwarding.

  ## Namespaces

  Every function also takes a trailing `opts` keyword list with
  `namespace:`, in forms that keep the original arities free
  (`emit_counter(name, metadata, opts)`, `execute(name, measurements,
  metadata, opts)`, `get_metrics(opts)`, `emit_system_event(type, metadata,
  opts)`, ...). Without it, the namespace is the caller's sandbox
  (`ElixirScope.Foundation.Sandbox`), else `:production`.

  ## Events emitted

    * `[:elixir_scope, :function, :execution, :stop]` by `time_function/3`:
      measurements `%{duration: native_units}`, metadata `%{module, function}`
      (`[..., :exception]` with `:error` added when the function raises).
    * `[:elixir_scope, :performance, name]` by `emit_performance/3`:
      measurements `%{gauge: value}`, the given metadata.
    * `[:elixir_scope, :system, type]` by `emit_system_event/2`:
      measurements `%{counter: 1}`, the given metadata.
  """

  alias ElixirScope.Foundation.Cluster
  alias ElixirScope.Foundation.Services.TelemetryService
  # Counters go straight to the recording half (the hot path).
  alias ElixirScope.Foundation.Services.TelemetryService.Recorder
  alias ElixirScope.Foundation.Types.Error

  @typedoc "An event name: a list of atoms."
  @type event_name :: [atom()]
  @typedoc "Options: `namespace:` (see the moduledoc)."
  @type opts :: [namespace: ElixirScope.Foundation.ProcessRegistry.namespace()]

  @doc "Starts the telemetry service unless it runs (see `TelemetryService.initialize/1`)."
  @spec initialize(keyword()) :: :ok | {:error, Error.t()}
  def initialize(opts \\ []), do: TelemetryService.initialize(opts)

  @doc "Status of the telemetry service; `opts` may name the `namespace:`."
  @spec status(opts()) :: {:ok, map()} | {:error, Error.t()}
  def status(opts \\ []), do: TelemetryService.status(opts)

  @doc "Records an event. Always `:ok`. `opts` may name the `namespace:`."
  @spec execute(event_name(), map(), map(), opts()) :: :ok
  def execute(name, measurements, metadata, opts \\ []),
    do: TelemetryService.execute(name, measurements, metadata, opts)

  @doc """
  Runs `fun`, recording its duration under `name ++ [:stop]` (see
  `TelemetryService.measure/4`). `opts` may name the `namespace:`.
  """
  @spec measure(event_name(), map(), (() -> result), opts()) :: result when result: term()
  def measure(name, metadata, fun, opts \\ []),
    do: TelemetryService.measure(name, metadata, fun, opts)

  @doc """
  Counter event of value 1. Always `:ok`. `emit_counter(name, metadata,
  opts)` names the `namespace:`.
  """
  @spec emit_counter(event_name(), map(), opts()) :: :ok
  def emit_counter(name, metadata, opts \\ []) when is_list(opts),
    do: Recorder.count(opts, name, 1, metadata)

  @doc "Gauge event. Always `:ok`. `opts` may name the `namespace:`."
  @spec emit_gauge(event_name(), number(), map(), opts()) :: :ok
  def emit_gauge(name, value, metadata, opts \\ []),
    do: TelemetryService.emit_gauge(name, value, metadata, opts)

  @doc """
  All metrics, nested by event name (see `TelemetryService.get_metrics/1`);
  `opts` may name the `namespace:`. With `scope: :cluster` (and `timeout: ms`): `{:ok, %{node => metrics}}`
  for every node of the cluster, or `{:partial, map, failed}` (see
  `ElixirScope.Foundation.Cluster`).
  """
  @spec get_metrics(Cluster.opts()) ::
          {:ok, map()} | {:partial, map(), Cluster.failed()} | {:error, Error.t()}
  def get_metrics(opts \\ []) do
    case Cluster.scope(opts) do
      :cluster -> Cluster.get_metrics(opts)
      {:local, opts} -> TelemetryService.get_metrics(opts)
      error -> error
    end
  end

  @doc "Attaches the default handler to each name; `opts` may name the `namespace:`."
  @spec attach_handlers([event_name()], opts()) :: :ok | {:error, Error.t()}
  def attach_handlers(names, opts \\ []), do: TelemetryService.attach_handlers(names, opts)

  @doc "Detaches the handlers of these names. Always `:ok`. `opts` may name the `namespace:`."
  @spec detach_handlers([event_name()], opts()) :: :ok
  def detach_handlers(names, opts \\ []), do: TelemetryService.detach_handlers(names, opts)

  @doc "True when the telemetry service runs; `opts` may name the `namespace:`."
  @spec available?(opts()) :: boolean()
  def available?(opts \\ []), do: TelemetryService.available?(opts)

  @doc """
  Runs `fun` and records its duration under
  `[:elixir_scope, :function, :execution, :stop]` with metadata
  `%{module: module, function: function}`; returns `fun`'s result. `opts`
  may name the `namespace:`.
  """
  @spec time_function(module(), atom(), (() -> result), opts()) :: result when result: term()
  def time_function(module, function, fun, opts \\ [])
      when is_atom(module) and is_atom(function) do
    TelemetryService.measure(
      [:elixir_scope, :function, :execution],
      %{module: module, function: function},
      fun,
      opts
    )
  end

  @doc "Gauge `[:elixir_scope, :performance, name]` of `value`; `opts` may name the `namespace:`."
  @spec emit_performance(atom(), number(), map(), opts()) :: :ok
  def emit_performance(name, value, metadata \\ %{}, opts \\ []),
    do: TelemetryService.emit_gauge([:elixir_scope, :performance, name], value, metadata, opts)

  @doc "Counter `[:elixir_scope, :system, type]`; `opts` may name the `namespace:`."
  @spec emit_system_event(atom(), map(), opts()) :: :ok
  def emit_system_event(type, metadata \\ %{}, opts \\ []),
    do: TelemetryService.emit_counter([:elixir_scope, :system, type], 1, metadata, opts)

  @doc """
  The metrics whose name starts with `pattern`, in the same nested shape as
  `get_metrics/1` (only the branch under `pattern` is kept, so
  `get_in(result, pattern) == get_in(all, pattern)`). `[]` returns
  everything; a pattern that matches nothing gives `{:ok, %{}}`.

  The original raised `FunctionClauseError` on every call; see `docs/compatibility.md`.

      {:ok, %{vm: %{memory: _}}} = get_metrics_for([:vm, :memory])
  """
  @spec get_metrics_for([atom()], opts()) :: {:ok, map()} | {:error, Error.t()}
  def get_metrics_for(pattern, opts \\ []) when is_list(pattern) do
    with {:ok, metrics} <- get_metrics(opts) do
      {:ok, TelemetryService.Nested.under(metrics, pattern)}
    end
  end
end
