defmodule ElixirScope.Foundation.Services.TelemetryService do
  @moduledoc """
  The Foundation's metric store, with the metrics held in
  Rust.

  `execute/4`, `measure/4`, `emit_counter/2..4` and `emit_gauge/4` run in the
  **caller's process**: they find the namespace's metrics handle (in
  `:persistent_term` for `:production`, in an ETS table owned by the
  registry's owner process for `{:test, ref}` namespaces) and record with one NIF call (integer counters are
  atomic additions), never through this GenServer's mailbox and never through
  `ServiceRegistry`/`ProcessRegistry`. They never raise (except `measure/4`,
  which reraises the exception of the measured function) and always return
  `:ok`. When no service is running in the namespace nothing is recorded.

  The GenServer owns the handle's lifecycle (create, retention cleanup,
  reset, status). The handle outlives a crash of the process: a restarted
  service re-attaches to the same metrics. A normal stop (`:normal`,
  `:shutdown`, e.g. `Application.stop/1`) releases it, so the next start
  begins with no metrics, as in the original.

  ## Recording rules

  The first event of a name creates an entry
  `%{count: 1, timestamp: native_monotonic, measurements: map, metadata: map}`.
  `timestamp` is `System.monotonic_time/0` at the name's last event. A
  counter recorded in the caller reads it cheaply: each scheduler thread
  reads the VM clock at most every 2 µs and extends that reading with the
  CPU's time-stamp counter in between (on x86-64 CPUs with an invariant
  counter), so such a timestamp is never later than the VM clock at the
  event and at most a fraction of a microsecond earlier.
  Later events bump `count`, refresh `timestamp` and merge measurements per
  key: `:gauge` takes the new value; `:counter` sums two numbers; any other
  two numbers become `(old + new) / 2` (a float); otherwise the new value
  wins. Metadata keeps the **first** value. Non-numeric values and metadata
  come back exactly as given (pids, refs, funs included). Integers beyond 64
  bits are merged as floats. Names must be lists of atoms (Latin-1 atoms on
  OTP 25); other names are forwarded to `:telemetry` but not recorded.
  Metadata is encoded once per name (first event only); non-numeric
  measurement values on every event, on a normal scheduler: keep them small.

  ## `:telemetry` forwarding

  Every `execute/4` (and so every counter, gauge and measure) is also passed
  to `:telemetry.execute/3` when the host has the `:telemetry` library
  loaded, whether or not this service runs. Detection happens at call time;
  raising handlers never reach the caller.

  ## Handlers

  `attach_handlers/2` attaches, per exact name, the default handler, which
  debug-logs the event. It runs **in the caller's process** right after the
  event is recorded; its exceptions are rescued and logged.

  ## Bounded memory

  At most `max_metrics` distinct names (default 10 000) are kept; events of
  new names beyond that are dropped and counted in `status/1`
  (`metrics_dropped`). Every `cleanup_interval` ms, entries whose last event
  is older than `metric_retention_ms` **milliseconds** are removed.

  ## Events emitted

    * `[:vm, :memory]`, `[:vm, :total_run_queue_lengths]`, `[:vm, :system_counts]`
      at start when `enable_vm_metrics` is true: measurements `%{gauge: 1}`,
      metadata `%{source: :vm}`, recorded in the service's own namespace.

  ## Options

  Start options (all merged into `status().config`, unknown keys included):

    * `:namespace` - `:production` (default) or `{:test, ref}`
    * `:enable_vm_metrics` - emit the VM gauges at start (default `true`)
    * `:enable_process_metrics` - kept for compatibility (default `true`)
    * `:metric_retention_ms` - age after which an idle metric is removed
      (default `300_000`)
    * `:cleanup_interval` - ms between retention cleanups (default `60_000`)
    * `:max_metrics` - cap on distinct names (default `10_000`; fixed when
      the namespace's handle is first created)

  Every public function takes a trailing `opts` keyword list with
  `:namespace` to address an instance; without it, the namespace is the
  caller's sandbox (`ElixirScope.Foundation.Sandbox`), else `:production`.
  """
  use GenServer
  require Logger

  @behaviour ElixirScope.Foundation.Contracts.Telemetry

  alias ElixirScope.Foundation.{Native, ProcessRegistry, Sandbox}
  alias ElixirScope.Foundation.Native.Route
  alias ElixirScope.Foundation.Services.{Errors, Lifecycle}
  alias ElixirScope.Foundation.Services.TelemetryService.{Forward, Nested, Recorder}
  alias ElixirScope.Foundation.Types.Error

  @default_config %{
    enable_vm_metrics: true,
    enable_process_metrics: true,
    metric_retention_ms: 300_000,
    cleanup_interval: 60_000,
    max_metrics: 10_000
  }

  @vm_gauges [[:vm, :memory], [:vm, :total_run_queue_lengths], [:vm, :system_counts]]

  @typedoc "An event name: a list of atoms."
  @type event_name :: [atom()]
  @typedoc "Options of every public function."
  @type opts :: [namespace: ProcessRegistry.namespace()]

  ## Client API

  use Lifecycle,
    service: :telemetry_service,
    doc:
      "Starts the service for `opts[:namespace]` (default `:production`). See the options above."

  @doc """
  Records an event (in the caller, see the moduledoc) and forwards it to
  `:telemetry` when loaded. Always `:ok`.
  """
  @impl ElixirScope.Foundation.Contracts.Telemetry
  @spec execute(event_name(), map(), map(), opts()) :: :ok
  def execute(name, measurements, metadata, opts \\ []) do
    Recorder.record(opts, name, measurements, metadata)
    Forward.execute(name, measurements, metadata)
  end

  @doc """
  Runs `fun` in the caller and returns its result, recording
  `name ++ [:stop]` with `%{duration: native_units}`. If `fun` raises,
  records `name ++ [:exception]` with the duration and `metadata` plus
  `:error` (the exception), then reraises it. Throws and exits pass through
  unrecorded.
  """
  @impl ElixirScope.Foundation.Contracts.Telemetry
  @spec measure(event_name(), map(), (() -> result), opts()) :: result when result: term()
  def measure(name, metadata, fun, opts \\ []) do
    start = System.monotonic_time()

    result =
      try do
        fun.()
      rescue
        exception ->
          duration = System.monotonic_time() - start

          error_metadata =
            if is_map(metadata), do: Map.put(metadata, :error, exception), else: metadata

          execute(suffix(name, :exception), %{duration: duration}, error_metadata, opts)
          reraise exception, __STACKTRACE__
      end

    execute(suffix(name, :stop), %{duration: System.monotonic_time() - start}, metadata, opts)
    result
  end

  @doc """
  Counter event: measurements `%{counter: value}` (value 1 for
  `emit_counter(name, metadata)`). Accepts `(name, metadata)`,
  `(name, value, metadata)`, `(name, metadata, opts)` and
  `(name, value, metadata, opts)`. Always `:ok`; a non-numeric value
  records nothing.
  """
  @impl ElixirScope.Foundation.Contracts.Telemetry
  @spec emit_counter(event_name(), map()) :: :ok
  def emit_counter(name, metadata), do: Recorder.count([], name, 1, metadata)

  @doc "`emit_counter(name, value, metadata)` or `emit_counter(name, metadata, opts)`."
  @spec emit_counter(event_name(), number() | map(), map() | opts()) :: :ok
  def emit_counter(name, value, metadata) when is_number(value),
    do: emit_counter(name, value, metadata, [])

  def emit_counter(name, metadata, opts) when is_list(opts),
    do: emit_counter(name, 1, metadata, opts)

  def emit_counter(_name, _value, _metadata), do: :ok

  @doc "Counter event of `value` in `opts[:namespace]`. Always `:ok`."
  @spec emit_counter(event_name(), number(), map(), opts()) :: :ok
  def emit_counter(name, value, metadata, opts) when is_number(value),
    do: Recorder.count(opts, name, value, metadata)

  def emit_counter(_name, _value, _metadata, _opts), do: :ok

  @doc "Gauge event: measurements `%{gauge: value}`. Always `:ok`."
  @impl ElixirScope.Foundation.Contracts.Telemetry
  @spec emit_gauge(event_name(), number(), map(), opts()) :: :ok
  def emit_gauge(name, value, metadata, opts \\ [])

  def emit_gauge(name, value, metadata, opts) when is_number(value),
    do: execute(name, %{gauge: value}, metadata, opts)

  def emit_gauge(_name, _value, _metadata, _opts), do: :ok

  @doc """
  All metrics as a map nested by name segments (`[:a, :b]` becomes
  `metrics.a.b`; the foundation's own counters become integer counts) plus `:retrieved_at`
  (native monotonic), read from the caller (no GenServer call).
  """
  @impl ElixirScope.Foundation.Contracts.Telemetry
  @spec get_metrics(opts()) :: {:ok, map()} | {:error, Error.t()}
  def get_metrics(opts \\ []) do
    namespace = namespace!(opts)

    case {Recorder.live_handle(namespace), Recorder.entry(namespace)} do
      {{:ok, handle}, _} ->
        snapshot(handle)

      # A restarted service is registered before its init re-attaches.
      {:error, {handle, _dead}} ->
        if whereis(namespace), do: snapshot(handle), else: unavailable()

      {:error, nil} ->
        unavailable()
    end
  end

  @doc """
  Attaches the default (debug-logging) handler to each name. `:ok`;
  `{:error, %Types.Error{error_type: :invalid_input}}` when a name is not a
  list of atoms; the unavailable error when the service is not running.
  """
  @impl ElixirScope.Foundation.Contracts.Telemetry
  @spec attach_handlers([event_name()], opts()) :: :ok | {:error, Error.t()}
  def attach_handlers(names, opts \\ []),
    do: call(namespace!(opts), {:attach_handlers, names})

  @doc "Detaches the handlers of these names. Always `:ok`."
  @impl ElixirScope.Foundation.Contracts.Telemetry
  @spec detach_handlers([event_name()], opts()) :: :ok
  def detach_handlers(names, opts \\ []) do
    case whereis(namespace!(opts)) do
      nil -> :ok
      pid -> GenServer.cast(pid, {:detach_handlers, names})
    end
  end

  @doc """
  `{:ok, %{status: :running, metrics_count, handlers_count, metrics_dropped, config}}`
  or the unavailable error.
  """
  @impl ElixirScope.Foundation.Contracts.Telemetry
  @spec status(opts()) :: {:ok, map()} | {:error, Error.t()}
  def status(opts \\ []), do: call(namespace!(opts), :get_status)

  @doc "Removes every metric (handlers stay). `:ok` or the unavailable error."
  @spec reset_metrics(opts()) :: :ok | {:error, Error.t()}
  def reset_metrics(opts \\ []), do: call(namespace!(opts), :clear_metrics)

  @doc """
  In test mode (the `:test_mode` app env, checked in the caller) clears
  metrics and handlers and restores the default config: `:ok`. Otherwise
  `{:error, %Types.Error{code: 7002, error_type: :operation_forbidden}}`.
  """
  @spec reset_state(opts()) :: :ok | {:error, Error.t()}
  def reset_state(opts \\ []) do
    namespace = namespace!(opts)

    if Lifecycle.test_mode?(),
      do: call(namespace, :reset_state),
      else: {:error, reset_forbidden_error()}
  end

  @doc "True when a service is registered in the namespace."
  @impl ElixirScope.Foundation.Contracts.Telemetry
  @spec available?(opts()) :: boolean()
  def available?(opts \\ []), do: whereis(namespace!(opts)) != nil

  @doc """
  Starts the service for `opts[:namespace]` unless it runs: `:ok`, or
  `{:error, %Types.Error{error_type: :service_initialization_failed}}`. The
  `:production` instance is (re)started under `ElixirScope.Foundation.Supervisor`
  and a `{:test, ref}` instance under `ElixirScope.Foundation.TestSupervisor`
  (transient) when those run; otherwise the instance is linked to the caller,
  as in the original.
  """
  @impl ElixirScope.Foundation.Contracts.Telemetry
  @spec initialize(keyword()) :: :ok | {:error, Error.t()}
  def initialize(opts \\ []) do
    namespace = Sandbox.namespace(opts)

    with false <- available?(namespace: namespace),
         :ok <- validate_config(Map.merge(@default_config, Map.new(opts))) do
      start_instance(namespace, Keyword.put(opts, :namespace, namespace))
    else
      true -> :ok
      {:stop, reason} -> {:error, initialization_error(reason)}
    end
  end

  ## Server

  @impl true
  def init(opts) do
    Process.flag(:trap_exit, true)
    config = Map.merge(@default_config, Map.new(opts))

    with :ok <- validate_config(config) do
      namespace = config.namespace
      handle = Recorder.attach(namespace, config.max_metrics)
      schedule_cleanup(config.cleanup_interval)
      if config.enable_vm_metrics, do: emit_vm_gauges(namespace), else: :ok
      ElixirScope.Foundation.Cluster.join(namespace, :telemetry_service)
      {:ok, %{config: config, namespace: namespace, handle: handle}}
    end
  end

  @impl true
  def handle_call(:get_metrics, _from, state), do: {:reply, snapshot(state.handle), state}

  def handle_call({:attach_handlers, names}, _from, state) do
    {:reply, native_names(&Native.metrics_attach/2, state.handle, names), state}
  end

  def handle_call(:get_status, _from, state) do
    {count, dropped, handlers, _max} = Native.metrics_status(state.handle)

    status = %{
      status: :running,
      metrics_count: count,
      handlers_count: handlers,
      metrics_dropped: dropped,
      config: state.config
    }

    {:reply, {:ok, status}, state}
  end

  def handle_call(:clear_metrics, _from, state) do
    _removed = Native.metrics_clear(state.handle)
    {:reply, :ok, state}
  end

  def handle_call(:reset_state, _from, state) do
    if Lifecycle.test_mode?() do
      _removed = Native.metrics_clear(state.handle)
      :ok = Native.metrics_clear_handlers(state.handle)
      {:reply, :ok, %{state | config: @default_config}}
    else
      {:reply, {:error, reset_forbidden_error()}, state}
    end
  end

  @impl true
  def handle_cast({:execute_event, name, measurements, metadata}, state) do
    Recorder.record_into(state.handle, name, measurements, metadata)
    {:noreply, state}
  end

  def handle_cast({:detach_handlers, names}, state) do
    _ = native_names(&Native.metrics_detach/2, state.handle, names)
    {:noreply, state}
  end

  def handle_cast(_other, state), do: {:noreply, state}

  @impl true
  def handle_info(:cleanup_old_metrics, state) do
    retention = System.convert_time_unit(state.config.metric_retention_ms, :millisecond, :native)
    _removed = Native.metrics_cleanup(state.handle, System.monotonic_time() - retention)
    schedule_cleanup(state.config.cleanup_interval)
    {:noreply, state}
  end

  def handle_info({:EXIT, _pid, _reason}, state), do: {:noreply, state}

  def handle_info(message, state) do
    Logger.debug("TelemetryService ignored #{inspect(message)}")
    {:noreply, state}
  end

  # A normal stop (`Application.stop/1`, supervisor shutdown, `GenServer.stop`)
  # releases the namespace's metrics, so the next start begins with none,
  # as in the original; a crash keeps them for the restarted service.
  @impl true
  def terminate(reason, %{namespace: namespace})
      when reason in [:normal, :shutdown] or
             (is_tuple(reason) and elem(reason, 0) == :shutdown) do
    Recorder.release(namespace)
    :ok
  end

  def terminate(_reason, _state), do: :ok

  ## Helpers

  defp suffix(name, last) when is_list(name) do
    name ++ [last]
  rescue
    _ -> nil
  end

  defp suffix(_name, _last), do: nil

  # A small store is read on the caller's scheduler; a big one on a dirty
  # scheduler (`Native.metrics_snapshot_small/1` answers :dirty).
  defp snapshot(handle) do
    handle
    |> Native.metrics_snapshot_small()
    |> Route.dirty(fn -> Native.metrics_snapshot(handle) end)
    |> case do
      {:ok, entries} -> {:ok, Nested.build(entries, System.monotonic_time())}
      {:error, native} -> {:error, ElixirScope.Foundation.Error.from_native(native)}
    end
  end

  defp native_names(fun, handle, names) when is_list(names) do
    fun.(handle, names)
  rescue
    ArgumentError -> {:error, invalid_names_error(names)}
  end

  defp native_names(_fun, _handle, names), do: {:error, invalid_names_error(names)}

  defp via(namespace), do: ProcessRegistry.via_tuple(namespace, :telemetry_service)

  defp whereis(namespace), do: GenServer.whereis(via(namespace))

  # A service that stops between the lookup and the call is unavailable too.
  defp call(namespace, message) do
    case whereis(namespace) do
      nil -> unavailable()
      pid -> GenServer.call(pid, message)
    end
  catch
    :exit, _reason -> unavailable()
  end

  defp namespace!(opts), do: Recorder.namespace(opts)

  ## Start-up

  defp start_instance(namespace, opts) do
    case do_start(namespace, opts) do
      {:ok, _pid} -> :ok
      {:error, {:already_started, _pid}} -> :ok
      {:error, :running} -> :ok
      {:error, reason} -> {:error, initialization_error(reason)}
      :ignore -> {:error, initialization_error(:ignore)}
    end
  end

  defp do_start(:production, opts) do
    case Process.whereis(ElixirScope.Foundation.Supervisor) do
      nil ->
        start_link(opts)

      supervisor ->
        case Supervisor.restart_child(supervisor, __MODULE__) do
          {:error, :not_found} -> Supervisor.start_child(supervisor, {__MODULE__, opts})
          other -> other
        end
    end
  end

  defp do_start(_namespace, opts) do
    case Process.whereis(ElixirScope.Foundation.TestSupervisor) do
      nil ->
        start_link(opts)

      supervisor ->
        spec = Supervisor.child_spec({__MODULE__, opts}, restart: :transient)
        DynamicSupervisor.start_child(supervisor, spec)
    end
  end

  defp validate_config(config) do
    checks = [
      cleanup_interval: &(is_integer(&1) and &1 > 0),
      metric_retention_ms: &(is_integer(&1) and &1 >= 0),
      max_metrics: &(is_integer(&1) and &1 > 0)
    ]

    Enum.find_value(checks, :ok, fn {key, valid?} ->
      value = Map.fetch!(config, key)
      if not valid?.(value), do: {:stop, {:invalid_option, key, value}}
    end)
  end

  defp schedule_cleanup(interval), do: Process.send_after(self(), :cleanup_old_metrics, interval)

  defp emit_vm_gauges(namespace) do
    Enum.each(@vm_gauges, &emit_gauge(&1, 1, %{source: :vm}, namespace: namespace))
  end

  ## Errors

  defp unavailable, do: {:error, unavailable_error()}

  defp unavailable_error, do: Errors.unavailable(:telemetry_service)

  defp reset_forbidden_error, do: Errors.reset_forbidden(:telemetry_service)

  defp initialization_error(reason) do
    Error.new(
      code: nil,
      error_type: :service_initialization_failed,
      message: "Failed to initialize telemetry service",
      context: %{reason: reason},
      category: :system,
      subcategory: :startup,
      severity: :high
    )
  end

  defp invalid_names_error(names) do
    Error.new(
      code: nil,
      error_type: :invalid_input,
      message: "Event names must be lists of atoms",
      context: %{names: names},
      severity: :low,
      category: :data,
      subcategory: :validation
    )
  end
end
