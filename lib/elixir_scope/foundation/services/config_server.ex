defmodule ElixirScope.Foundation.Services.ConfigServer do
  @moduledoc """
  Owner of the runtime configuration (`%ElixirScope.Foundation.Types.Config{}`).

  Registered as `ProcessRegistry.via_tuple(namespace, :config_server)`.

  * **Reads** (`get/0,1,2`) never go through the process: every accepted
    config is published in `:persistent_term` under `{ConfigServer, namespace}`
    and read in the caller.
  * **Updates** and resets are serialized in the server, validated by
    `Logic.ConfigLogic` / `Validation.ConfigValidator`, announced to
    subscribers as `{:config_notification, {:config_updated, path, value}}` /
    `{:config_notification, {:config_reset, config}}`. The config is
    republished at most 50 times at once, then once per 5 ms: updates arriving
    faster are group committed (each caller gets `:ok`, and subscribers their notification,
    once the publication carrying its update is done), which bounds the
    memory the VM holds for replaced `:persistent_term` values.
  * **Crash recovery**: a killed server restarts from the config it had last
    published, so no acknowledged update is lost (a normal stop erases it,
    and the next start builds a fresh config).
  * **Audit and counters** are handed off without waiting, in the server's
    own namespace: the audit event (built with
    `Logic.EventLogic.create_event/2`, as `Events.new_event/2`) goes to
    `Services.EventStore.store_async/2` (a bounded queue drained outside this
    process), the counter to `Services.TelemetryService.emit_counter/4`. A
    slow, crashed or absent EventStore never delays or crashes the server;
    every audit event that could not be handed off is counted in `status/0`
    (`audit_failures`; `audit_skipped` when no EventStore is registered).
    Audit data: `:config_updated` → `%{path, new_value, previous_value:
    {:ok, old}, timestamp: mono_ms}`; `:config_reset` → `%{timestamp,
    reset_from_updates_count}`.

  Every public function takes a trailing `opts` keyword with
  `namespace: :production | {:test, ref}` to address an instance; without
  it, the namespace is the caller's sandbox
  (`ElixirScope.Foundation.Sandbox`), else `:production`.

  ## Telemetry

    * `[:foundation, :config_updates]` counter (value 1), metadata `%{path: path}`.
    * `[:foundation, :config_resets]` counter (value 1), metadata
      `%{reset_from_updates_count: n}`.
  """
  use GenServer
  require Logger

  @behaviour ElixirScope.Foundation.Contracts.Configurable

  alias ElixirScope.Foundation.{ProcessRegistry, Sandbox, ServiceRegistry}
  alias ElixirScope.Foundation.Logic.ConfigLogic
  alias ElixirScope.Foundation.Services.ConfigServer.{Audit, Publisher}
  alias ElixirScope.Foundation.Services.Errors
  alias ElixirScope.Foundation.Types.{Config, Error}
  alias ElixirScope.Foundation.Validation.ConfigValidator

  @typedoc "Options of every public function."
  @type opts :: [namespace: ProcessRegistry.namespace()]

  # -- client API ------------------------------------------------------------

  @doc """
  Starts the server. `opts[:namespace]` defaults to `:production`; the other
  options are merged into the config (as the original's `build_config/1`).
  """
  @spec start_link(keyword()) :: GenServer.on_start()
  def start_link(opts \\ []) do
    namespace = Keyword.get(opts, :namespace, :production)
    opts = Keyword.put(opts, :namespace, namespace)

    if ProcessRegistry.namespace?(namespace) do
      GenServer.start_link(__MODULE__, opts,
        name: ProcessRegistry.via_tuple(namespace, :config_server)
      )
    else
      {:error, {:invalid_namespace, namespace}}
    end
  end

  @impl ElixirScope.Foundation.Contracts.Configurable
  @doc """
  The current configuration, read from `:persistent_term` in the caller.

  Only while an instance is registered but has not yet published (the
  moment between its registration and the end of its `init/1`) does the read
  fall back to a call, which waits for `init/1` to finish.

  `get/1` takes either a path (`get([:ai, :provider])`) or, for the whole
  config of another namespace, options (`get(namespace: ns)`).
  """
  @spec get(opts()) :: {:ok, Config.t()} | {:error, Error.t()}
  def get(opts \\ []) when is_list(opts) do
    case Keyword.keyword?(opts) and opts != [] do
      true -> get([], opts)
      false -> get(opts, [])
    end
  end

  @doc """
  The value at `path` (`[]` → the whole config), read in the caller.
  `{:error, %Types.Error{error_type: :config_path_not_found}}` for a missing path.
  """
  @spec get([atom()], opts()) :: {:ok, term()} | {:error, Error.t()}
  def get(path, []) when is_list(path), do: read(path, Sandbox.namespace([]), [])
  def get(path, opts) when is_list(path), do: read(path, namespace(opts), opts)

  defp read(path, namespace, opts) do
    case Publisher.published(namespace) do
      nil ->
        call(opts, {:get_config_path, path})

      config ->
        case read_path(config, path) do
          {:ok, _} = found -> found
          :slow -> ConfigLogic.get_config_value(config, path)
        end
    end
  end

  # Hot path: walks the published config in the caller. Anything unusual (a
  # missing key, a non-map on the way) is left to ConfigLogic, which owns the
  # exact error shapes.
  defp read_path(value, []), do: {:ok, value}

  defp read_path(%{} = map, [key | rest]) do
    case map do
      %{^key => value} -> read_path(value, rest)
      _ -> :slow
    end
  end

  defp read_path(_value, _rest), do: :slow

  @impl ElixirScope.Foundation.Contracts.Configurable
  @doc """
  Sets `path` to `value` if the path is updatable and the new config is
  valid. On success subscribers are notified, the audit event and counter
  handed off, and `:ok` returned; on failure nothing changes.
  """
  @spec update([atom()], term(), opts()) :: :ok | {:error, Error.t()}
  def update(path, value, opts \\ []) when is_list(path),
    do: call(opts, {:update_config, path, value})

  @impl ElixirScope.Foundation.Contracts.Configurable
  @doc """
  Resets the config to the pure defaults (`Types.Config.new/0`: app env and
  start options are not re-applied, as in the original); metrics are kept;
  subscribers get `{:config_notification, {:config_reset, config}}`.
  """
  @spec reset(opts()) :: :ok | {:error, Error.t()}
  def reset(opts \\ []), do: call(opts, :reset_config)

  @doc """
  Subscribes `pid` (default the caller) to notifications; idempotent.
  `subscribe(namespace: ns)` subscribes the caller to another namespace.
  """
  @spec subscribe(pid() | opts(), opts()) :: :ok | {:error, Error.t()}
  def subscribe(pid_or_opts \\ self(), opts \\ [])
  def subscribe(opts, []) when is_list(opts), do: subscribe(self(), opts)
  def subscribe(pid, opts) when is_pid(pid), do: call(opts, {:subscribe, pid})

  @doc """
  Unsubscribes `pid` (default the caller); `:ok` even if not subscribed.
  `unsubscribe(namespace: ns)` unsubscribes the caller from another namespace.
  """
  @spec unsubscribe(pid() | opts(), opts()) :: :ok | {:error, Error.t()}
  def unsubscribe(pid_or_opts \\ self(), opts \\ [])
  def unsubscribe(opts, []) when is_list(opts), do: unsubscribe(self(), opts)
  def unsubscribe(pid, opts) when is_pid(pid), do: call(opts, {:unsubscribe, pid})

  @doc """
  `{:ok, %{status: :running, uptime_ms, updates_count, last_update,
  subscribers_count, audit_sent, audit_failures, audit_skipped}}`.
  """
  @spec status(opts()) :: {:ok, map()} | {:error, Error.t()}
  def status(opts \\ []), do: call(opts, :get_status)

  @impl ElixirScope.Foundation.Contracts.Configurable
  @doc "Whether the instance of the namespace is registered."
  @spec available?(opts()) :: boolean()
  def available?(opts \\ []),
    do: match?({:ok, _}, ServiceRegistry.lookup(namespace(opts), :config_server))

  @impl ElixirScope.Foundation.Contracts.Configurable
  @doc "Validates a config with `Validation.ConfigValidator`."
  @spec validate(Config.t()) :: :ok | {:error, Error.t()}
  def validate(config), do: ConfigValidator.validate(config)

  @impl ElixirScope.Foundation.Contracts.Configurable
  @doc "The paths `update/2` accepts."
  @spec updatable_paths() :: [[atom()]]
  def updatable_paths, do: ConfigLogic.updatable_paths()

  @doc """
  Test mode only (`:test_mode` in the `:elixir_scope` env, checked in the
  caller): config rebuilt from the app env, subscribers dropped (and
  demonitored), metrics reset. Otherwise
  `{:error, %Types.Error{code: 5002, error_type: :operation_forbidden}}`.
  """
  @spec reset_state(opts()) :: :ok | {:error, Error.t()}
  def reset_state(opts \\ []) do
    if Application.get_env(:elixir_scope, :test_mode, false),
      do: call(opts, :reset_state),
      else: {:error, forbidden()}
  end

  @doc """
  Ensures the instance runs. `:production`: started as a child of
  `ElixirScope.Foundation.Supervisor` (or by starting the application), never
  linked to the caller. `{:test, ref}`: started under
  `ElixirScope.Foundation.TestSupervisor`. Other options go to `start_link/1`.
  """
  @spec initialize(keyword()) :: :ok | {:error, Error.t()}
  def initialize(opts \\ []) do
    namespace = namespace(opts)

    cond do
      not ProcessRegistry.namespace?(namespace) ->
        wrap_start({:error, {:invalid_namespace, namespace}})

      ProcessRegistry.registered?(namespace, :config_server) ->
        :ok

      true ->
        start_supervised(namespace, Keyword.put(opts, :namespace, namespace))
    end
  end

  @doc "Stops the instance (a supervised one is restarted by its supervisor); `:ok`."
  @spec stop(opts()) :: :ok
  def stop(opts \\ []) do
    case ProcessRegistry.lookup(namespace(opts), :config_server) do
      {:ok, pid} -> GenServer.stop(pid)
      :error -> :ok
    end
  catch
    :exit, _ -> :ok
  end

  # -- helpers (client side) -------------------------------------------------

  # Explicit `namespace:`, else the caller's sandbox, else `:production`.
  defp namespace(opts), do: Sandbox.namespace(opts)

  defp call(opts, message) do
    case ProcessRegistry.lookup(namespace(opts), :config_server) do
      {:ok, pid} -> GenServer.call(pid, message)
      :error -> {:error, unavailable()}
    end
  catch
    # The instance stopped between the lookup and the call.
    :exit, {:noproc, _} -> {:error, unavailable()}
    :exit, {:normal, _} -> {:error, unavailable()}
    :exit, {:shutdown, _} -> {:error, unavailable()}
  end

  defp start_supervised(:production, opts) do
    spec = {__MODULE__, opts}

    result =
      case Process.whereis(ElixirScope.Foundation.Supervisor) do
        nil -> start_application()
        _sup -> start_child(ElixirScope.Foundation.Supervisor, spec)
      end

    wrap_start(result)
  end

  defp start_supervised({:test, _} = namespace, opts) do
    spec = Supervisor.child_spec({__MODULE__, opts}, restart: :transient)
    wrap_start(DynamicSupervisor.start_child(ElixirScope.Foundation.TestSupervisor, spec))
  catch
    :exit, reason -> wrap_start({:error, {reason, namespace}})
  end

  defp start_application do
    case Application.ensure_all_started(:elixir_scope_foundation) do
      {:ok, _} -> :ok
      error -> error
    end
  end

  defp start_child(sup, spec) do
    case Supervisor.start_child(sup, spec) do
      # Known to the supervisor but stopped: restart it in place (with the
      # options it was first started with).
      {:error, :already_present} ->
        Supervisor.restart_child(sup, __MODULE__)

      other ->
        other
    end
  end

  defp wrap_start(:ok), do: :ok
  defp wrap_start({:ok, _}), do: :ok
  defp wrap_start({:ok, _, _}), do: :ok
  defp wrap_start({:error, {:already_started, _}}), do: :ok

  defp wrap_start({:error, reason}),
    do: {:error, %{unavailable() | message: "Failed to start ConfigServer: #{inspect(reason)}"}}

  defp unavailable, do: Errors.unavailable(:config_server)

  defp forbidden, do: Errors.reset_forbidden(:config_server)

  # -- server ----------------------------------------------------------------

  @impl true
  def init(opts) do
    namespace = Keyword.fetch!(opts, :namespace)

    case initial_config(namespace, opts) do
      {:ok, config} ->
        Process.flag(:trap_exit, true)
        Publisher.publish(namespace, config)
        ProcessRegistry.notify_registered(namespace, :config_server)
        {:ok, new_state(namespace, config)}

      {:error, error} ->
        {:stop, {:config_validation_failed, error}}
    end
  end

  # A config still published for the namespace means the previous instance
  # was killed (terminate/2, which erases it, did not run): resume from it so
  # a crash does not lose acknowledged updates. Otherwise build a fresh one.
  defp initial_config(namespace, opts) do
    case Publisher.published(namespace) do
      %Config{} = config -> {:ok, config}
      nil -> ConfigLogic.build_config(opts)
    end
  end

  defp new_state(namespace, config) do
    %{
      config: config,
      namespace: namespace,
      subscribers: [],
      monitors: %{},
      metrics: %{start_time: now_ms(), updates_count: 0, last_update: nil}
    }
    |> Map.merge(Audit.fields())
    |> Map.merge(Publisher.fields())
  end

  @impl true
  def handle_call(:get_config, _from, state), do: {:reply, {:ok, state.config}, state}

  def handle_call({:get_config_path, path}, _from, state),
    do: {:reply, ConfigLogic.get_config_value(state.config, path), state}

  def handle_call({:update_config, path, value}, from, state) do
    case ConfigLogic.update_config(state.config, path, value) do
      {:ok, new_config} ->
        state = apply_update(state, new_config, path, value)
        {:noreply, Publisher.commit(state, from, path, value)}

      {:error, _} = error ->
        {:reply, error, state}
    end
  end

  def handle_call(:reset_config, _from, state),
    do: {:reply, :ok, apply_reset(Publisher.flush(state))}

  def handle_call({:subscribe, pid}, _from, state), do: {:reply, :ok, add_subscriber(state, pid)}

  def handle_call({:unsubscribe, pid}, _from, state),
    do: {:reply, :ok, remove_subscriber(state, pid)}

  def handle_call(:get_status, _from, state), do: {:reply, {:ok, status_map(state)}, state}

  def handle_call(:reset_state, _from, state) do
    state = Publisher.flush(state)

    case ConfigLogic.build_config([]) do
      {:ok, config} ->
        Enum.each(Map.keys(state.monitors), &Process.demonitor(&1, [:flush]))
        Publisher.publish(state.namespace, config)
        {:reply, :ok, new_state(state.namespace, config)}

      {:error, _} = error ->
        {:reply, error, state}
    end
  end

  @impl true
  def handle_info(:flush_config, state), do: {:noreply, Publisher.tick(state)}

  def handle_info({:DOWN, ref, :process, pid, _reason}, state) do
    {:noreply,
     %{
       state
       | subscribers: List.delete(state.subscribers, pid),
         monitors: Map.delete(state.monitors, ref)
     }}
  end

  def handle_info(message, state) do
    Logger.debug("ConfigServer ignored message: #{inspect(message)}")
    {:noreply, state}
  end

  @impl true
  def terminate(_reason, state) do
    Publisher.erase(state.namespace)
    :ok
  end

  # -- server helpers --------------------------------------------------------

  # Publication and the notifications happen in Publisher.flush/1, before
  # the reply.
  defp apply_update(state, new_config, path, value) do
    previous = ConfigLogic.get_config_value(state.config, path)

    metrics = %{
      state.metrics
      | updates_count: state.metrics.updates_count + 1,
        last_update: now_ms()
    }

    data = %{path: path, new_value: value, previous_value: previous, timestamp: now_ms()}
    state = Audit.event(%{state | config: new_config, metrics: metrics}, :config_updated, data)
    Audit.count(state.namespace, [:foundation, :config_updates], %{path: path})
    state
  end

  defp apply_reset(state) do
    config = Config.new()
    Publisher.publish(state.namespace, config)
    Publisher.notify(state.subscribers, {:config_reset, config})
    n = state.metrics.updates_count

    state =
      Audit.event(%{state | config: config}, :config_reset, %{
        timestamp: now_ms(),
        reset_from_updates_count: n
      })

    Audit.count(state.namespace, [:foundation, :config_resets], %{reset_from_updates_count: n})
    state
  end

  defp add_subscriber(state, pid) do
    if pid in state.subscribers do
      state
    else
      ref = Process.monitor(pid)

      %{
        state
        | subscribers: [pid | state.subscribers],
          monitors: Map.put(state.monitors, ref, pid)
      }
    end
  end

  defp remove_subscriber(state, pid) do
    {gone, kept} = Enum.split_with(state.monitors, fn {_ref, p} -> p == pid end)
    Enum.each(gone, fn {ref, _} -> Process.demonitor(ref, [:flush]) end)
    %{state | subscribers: List.delete(state.subscribers, pid), monitors: Map.new(kept)}
  end

  defp status_map(state) do
    %{
      status: :running,
      uptime_ms: max(now_ms() - state.metrics.start_time, 0),
      updates_count: state.metrics.updates_count,
      last_update: state.metrics.last_update,
      subscribers_count: length(state.subscribers),
      audit_sent: state.audit.sent,
      audit_failures: state.audit.failures,
      audit_skipped: state.audit.skipped
    }
  end

  defp now_ms, do: System.monotonic_time(:millisecond)
end
