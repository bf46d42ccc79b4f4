defmodule ElixirScope.Foundation.Services.ConfigServer do
  @moduledoc """
  Owner of the runtime configuration (`%ElixirScope.Foundation.Types.Config{}`).

  Registered as `ProcessRegistry.via_tuple(namespace, :config_server)`.

  * **Reads** (`get/0,1,2`) never go through the process: every accepted
    config is published in an ETS table (`read_concurrency`) owned by a
    long-lived process (`ConfigServer.Table`), one row per top-level
    section plus a small header, and read in the caller: a path read copies
    only its section; a whole-config read checks that its rows belong to one
    publication. `:production` path reads are also cached in the reading
    process, validated by a version counter the server bumps on every
    publication (a hit costs an `:atomics` read and a process-dictionary
    read). No config is kept in `:persistent_term`.
  * **Updates** and resets are serialized in the server, validated by
    `Validation.ConfigValidator` (an update revalidates only what it
    changes: the rest of the config was valid and is unchanged, so the
    result is the whole-config validation's), published with one ETS
    insert, announced to subscribers as
    `{:config_notification, {:config_updated, path, value}}` /
    `{:config_notification, {:config_reset, config}}` and audited, all
    before the reply; the counters are recorded before `update/2` or
    `reset/0` returns (an update's by the caller, from the server's reply).
    Updates that wait together in the server's mailbox are committed
    together: applied in turn, published once, then each notified,
    audited and answered in its turn.
  * **Crash recovery**: a killed server restarts from the config it had last
    published, so no acknowledged update is lost. A normal stop erases the
    namespace's rows, and the next start builds a fresh config from the env.
  * **Audit**: the event (built in the server, as `Events.new_event/2`
    would) is written synchronously into the namespace's native event store
    through its handle, never through the EventStore process: when
    `update/2` returns `:ok` the event is visible to `EventStore.query/1`,
    `get/1` and `get_by_correlation/1` from any process, and a suspended,
    dead or restarting EventStore process never delays the server. With no
    store (stopped normally, or never started) no event is stored. Outcomes
    are counted in `status/0`: `audit_sent`, `audit_skipped` (no store),
    `audit_failures`. Audit data: `:config_updated` → `%{path, new_value,
    previous_value: {:ok, old}, timestamp: mono_ms}`; `:config_reset` →
    `%{timestamp, reset_from_updates_count}`.

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

  alias ElixirScope.Foundation.{ProcessRegistry, Sandbox}
  alias ElixirScope.Foundation.Logic.ConfigLogic
  alias ElixirScope.Foundation.Services.ConfigServer.{Audit, Table, Update}
  alias ElixirScope.Foundation.Services.{Errors, Lifecycle}
  alias ElixirScope.Foundation.Types.{Config, Error}
  alias ElixirScope.Foundation.Validation.ConfigValidator

  # The caller's dictionary key of the server it called last.
  @server_key {__MODULE__, :server}

  @typedoc "Options of every public function."
  @type opts :: [namespace: ProcessRegistry.namespace()]

  # -- client API ------------------------------------------------------------

  use Lifecycle,
    service: :config_server,
    doc: """
    Starts the server. `opts[:namespace]` defaults to `:production`; the other
    options are merged into the config (as the original's `build_config/1`).
    """

  @impl ElixirScope.Foundation.Contracts.Configurable
  @doc """
  The current configuration, read from the published config in the caller.

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
    case Table.read(namespace, path) do
      {:ok, _} = found -> found
      # Anything unusual (a missing key, a non-map on the way) is left to
      # ConfigLogic, which owns the exact error shapes.
      {:published, config} -> ConfigLogic.get_config_value(config, path)
      :unpublished -> call(opts, {:get_config_path, path})
    end
  end

  @impl ElixirScope.Foundation.Contracts.Configurable
  @doc """
  Sets `path` to `value` if the path is updatable and the new config is
  valid. On success the new config is published, subscribers are notified,
  the audit event stored and the counter recorded, then `:ok` is returned;
  on failure nothing changes.
  """
  @spec update([atom()], term(), opts()) :: :ok | {:error, Error.t()}
  def update(path, value, opts \\ []) when is_list(path) do
    namespace = namespace(opts)

    # The server answers with the audit event's id (nil if none was
    # stored), the caller records the counters (see handle_call/3), so the
    # server is free for the next update meanwhile.
    case call_in(namespace, {:update_config, path, value, :audit_id}, :request) do
      {:ok, id} -> Audit.count_update(namespace, path, id)
      other -> other
    end
  end

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
  def available?(opts \\ []), do: Lifecycle.registered?(namespace(opts), :config_server)

  @impl ElixirScope.Foundation.Contracts.Configurable
  @doc "Validates a config with `Validation.ConfigValidator`."
  @spec validate(Config.t()) :: :ok | {:error, Error.t()}
  def validate(config), do: ConfigValidator.validate(config)

  @impl ElixirScope.Foundation.Contracts.Configurable
  @doc "The paths `update/2` accepts."
  @spec updatable_paths() :: [[atom()]]
  def updatable_paths, do: ConfigLogic.updatable_paths()

  @doc """
  Test mode only (the `:test_mode` app env, checked in the
  caller): config rebuilt from the app env, subscribers dropped (and
  demonitored), metrics reset. Otherwise
  `{:error, %Types.Error{code: 5002, error_type: :operation_forbidden}}`.
  """
  @spec reset_state(opts()) :: :ok | {:error, Error.t()}
  def reset_state(opts \\ []) do
    if Lifecycle.test_mode?(),
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
  def stop(opts \\ []), do: Lifecycle.stop(namespace(opts), :config_server)

  # -- helpers (client side) -------------------------------------------------

  # Explicit `namespace:`, else the caller's sandbox, else `:production`.
  defp namespace(opts), do: Sandbox.namespace(opts)

  defp call(opts, message), do: call_in(namespace(opts), message, :call)

  # The registered pid without a liveness check: `Process.alive?/1` on a
  # server that still has signals queued (the previous call's demonitor, or
  # other callers' requests) waits for the server to answer a signal of its
  # own, a second round trip per call. A dead pid makes the call exit with
  # `:noproc`, which is the same unavailable error.
  #
  # The caller keeps the last pid it found (one namespace, one entry of its
  # dictionary), so repeated calls skip the registry lookup. A cached pid
  # that is dead (its server stopped or was restarted) exits with
  # `:noproc` before the request is handled: the entry is dropped and the
  # call goes once more to whatever the registry now names.
  defp call_in(namespace, message, how) do
    case Process.get(@server_key) do
      {^namespace, pid} -> call_cached(namespace, pid, message, how)
      _ -> call_fresh(namespace, message, how)
    end
  end

  defp call_cached(namespace, pid, message, how) do
    send_call(pid, message, how)
  catch
    :exit, {:noproc, _} ->
      Process.delete(@server_key)
      call_fresh(namespace, message, how)

    :exit, {reason, _} when reason in [:normal, :shutdown] ->
      stale()
  end

  defp call_fresh(namespace, message, how) do
    case server(namespace) do
      {:ok, pid} ->
        Process.put(@server_key, {namespace, pid})
        send_call(pid, message, how)

      :error ->
        {:error, unavailable()}
    end
  catch
    # The instance stopped between the lookup and the call.
    :exit, {:noproc, _} -> stale()
    :exit, {:normal, _} -> stale()
    :exit, {:shutdown, _} -> stale()
  end

  defp send_call(pid, message, :call), do: GenServer.call(pid, message)
  defp send_call(pid, message, :request), do: request(pid, message)

  # `GenServer.call/2` for the update, the hot path, without its monitor:
  # the reply comes back through a reply alias, and the server is
  # monitored only once the reply is late (`@watch_ms`). A monitor costs
  # the server two signals per call (the monitor and, after the reply, the
  # demonitor), and the demonitor wakes it once more after every reply.
  # The exits are `GenServer.call/3`'s: `{reason, {GenServer, :call, _}}`
  # when the server is (or goes) down before replying (a dead pid: after
  # `@watch_ms`, as `:noproc`), `{:timeout, _}` after 5 s. A reply sent
  # before the server went down always arrives before its `:DOWN`.
  @watch_ms 10
  @call_timeout 5_000

  # `[:alias | alias]` is the reply tag `GenServer.reply/2` sends to an alias
  # with: an improper list on purpose.
  @dialyzer {:no_improper_lists, request: 2}
  defp request(pid, message) do
    alias = :erlang.alias([:reply])
    tag = [:alias | alias]
    send(pid, {:"$gen_call", {self(), tag}, message})

    receive do
      {^tag, reply} -> reply
    after
      @watch_ms -> watched(pid, message, alias, tag)
    end
  end

  defp watched(pid, message, alias, tag) do
    ref = Process.monitor(pid)

    receive do
      {^tag, reply} ->
        Process.demonitor(ref, [:flush])
        reply

      {:DOWN, ^ref, :process, _, reason} ->
        last_chance(alias, tag, {reason, {GenServer, :call, [pid, message, @call_timeout]}})
    after
      @call_timeout - @watch_ms ->
        Process.demonitor(ref, [:flush])
        last_chance(alias, tag, {:timeout, {GenServer, :call, [pid, message, @call_timeout]}})
    end
  end

  # The alias is closed, so no later reply can come; one that came in
  # meanwhile still counts (the update it answers was committed).
  defp last_chance(alias, tag, reason) do
    :erlang.unalias(alias)

    receive do
      {^tag, reply} -> reply
    after
      0 -> exit(reason)
    end
  end

  defp stale do
    Process.delete(@server_key)
    {:error, unavailable()}
  end

  defp server(namespace) do
    case Registry.lookup(ProcessRegistry, {namespace, :config_server}) do
      [{pid, _}] -> {:ok, pid}
      [] -> ProcessRegistry.lookup(namespace, :config_server)
    end
  rescue
    # No registry (the application is stopped): the backup table may know.
    ArgumentError -> ProcessRegistry.lookup(namespace, :config_server)
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
        # Versions keep growing across restarts of the server.
        version = Table.next_version(namespace)
        Table.publish(namespace, config, version)
        ProcessRegistry.notify_registered(namespace, :config_server)
        ElixirScope.Foundation.Cluster.join(namespace, :config_server)
        {:ok, new_state(namespace, config, version)}

      {:error, error} ->
        {:stop, {:config_validation_failed, error}}
    end
  end

  # A config still published for the namespace means the previous instance
  # was killed (terminate/2, which erases it on a normal stop, did not run or
  # did not erase): resume from it so a crash does not lose acknowledged
  # updates. Otherwise build a fresh one.
  defp initial_config(namespace, opts) do
    case Table.published(namespace) do
      %Config{} = config -> {:ok, config}
      _ -> ConfigLogic.build_config(opts)
    end
  end

  defp new_state(namespace, config, version) do
    Map.merge(
      %{
        config: config,
        # The published version and the config's top-level keys (the
        # header row of every publication).
        version: version,
        keys: Map.keys(config),
        namespace: namespace,
        subscribers: [],
        monitors: %{},
        metrics: %{start_time: now_ms(), updates_count: 0, last_update: nil}
      },
      Audit.fields()
    )
  end

  @impl true
  def handle_call(:get_config, _from, state), do: {:reply, {:ok, state.config}, state}

  def handle_call({:get_config_path, path}, _from, state),
    do: {:reply, ConfigLogic.get_config_value(state.config, path), state}

  # `update/3` asks for the audit event's id in the reply and records the
  # counters in the caller before returning `:ok`, so the server does not
  # record them and does no work after its reply (work after a reply leaves the caller
  # waiting in the run queue, where the other scheduler steals it: every
  # later message then has to wake a scheduler). A bare `{:update_config,
  # path, value}` call is answered `:ok` after the server recorded them.
  #
  # Updates of other callers already waiting in the mailbox are taken
  # with it and committed together (see `apply_batch/2`).
  def handle_call({:update_config, path, value, :audit_id}, from, state) do
    case queued_updates() do
      [] ->
        case Update.apply(state.config, path, value) do
          {:ok, new_config, previous, changed} ->
            {state, id} = apply_update(state, new_config, previous, changed, path, value)
            {:reply, {:ok, id}, state}

          {:error, _} = error ->
            {:reply, error, state}
        end

      queued ->
        {:noreply, apply_batch([{from, path, value} | queued], state)}
    end
  end

  def handle_call({:update_config, path, value}, _from, state) do
    case Update.apply(state.config, path, value) do
      {:ok, new_config, previous, changed} ->
        {state, id} = apply_update(state, new_config, previous, changed, path, value)
        Audit.count_all(state.namespace, Audit.update_counters(path, id))
        {:reply, :ok, state}

      {:error, _} = error ->
        {:reply, error, state}
    end
  end

  def handle_call(:reset_config, _from, state) do
    {state, counters} = apply_reset(state)
    Audit.count_all(state.namespace, counters)
    {:reply, :ok, state}
  end

  def handle_call({:subscribe, pid}, _from, state), do: {:reply, :ok, add_subscriber(state, pid)}

  def handle_call({:unsubscribe, pid}, _from, state),
    do: {:reply, :ok, remove_subscriber(state, pid)}

  def handle_call(:get_status, _from, state), do: {:reply, {:ok, status_map(state)}, state}

  def handle_call(:reset_state, _from, state) do
    case ConfigLogic.build_config([]) do
      {:ok, config} ->
        Enum.each(Map.keys(state.monitors), &Process.demonitor(&1, [:flush]))
        version = state.version + 1
        Table.publish(state.namespace, config, version, state.config)
        {:reply, :ok, new_state(state.namespace, config, version)}

      {:error, _} = error ->
        {:reply, error, state}
    end
  end

  @impl true
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

  # A normal stop leaves nothing behind (the next start builds a fresh
  # config); a crash keeps the published config for the restart.
  @impl true
  def terminate(reason, state) do
    if reason in [:normal, :shutdown] or match?({:shutdown, _}, reason),
      do: Table.erase(state.namespace, state.config)

    :ok
  end

  # -- server helpers --------------------------------------------------------

  # In the original's order: state, subscribers, audit event; the reply and
  # the counters follow. The config is published first, so a subscriber
  # reading on notification sees the new value. Returns the state and the
  # audit event's id (nil if none was stored).
  defp apply_update(state, new_config, previous, changed, path, value) do
    now = now_ms()
    version = state.version + 1

    state =
      case changed do
        {:key, key} ->
          Table.publish_keys(state.namespace, new_config, [key], state.keys, version)
          %{state | version: version}

        :all ->
          Table.publish(state.namespace, new_config, version, state.config)
          %{state | version: version, keys: Map.keys(new_config)}
      end

    notify(state.subscribers, {:config_updated, path, value})
    metrics = %{state.metrics | updates_count: state.metrics.updates_count + 1, last_update: now}
    data = %{path: path, new_value: value, previous_value: previous, timestamp: now}

    Audit.event(%{state | config: new_config, metrics: metrics}, :config_updated, data)
  end

  # Several updates, in mailbox order: each is applied to the config the
  # previous one left (a rejected one is answered at once and changes
  # nothing), the result published once, then, per update, its subscribers'
  # notification, its audit event and its caller's reply (after its own
  # audit event is stored). All of them are waiting calls none of which has
  # been answered, so committing them in this order is as if they had
  # arrived in it.
  defp apply_batch(items, state) do
    {config, applied} =
      Enum.reduce(items, {state.config, []}, fn {from, path, value}, {config, acc} ->
        case Update.apply(config, path, value) do
          {:ok, new_config, previous, changed} ->
            {new_config, [{from, path, value, previous, changed} | acc]}

          {:error, _} = error ->
            GenServer.reply(from, error)
            {config, acc}
        end
      end)

    case applied do
      [] -> state
      _ -> commit_batch(state, config, Enum.reverse(applied))
    end
  end

  defp commit_batch(state, config, applied) do
    now = now_ms()
    version = state.version + 1

    state =
      case changed_keys(applied, []) do
        :all ->
          Table.publish(state.namespace, config, version, state.config)
          %{state | config: config, version: version, keys: Map.keys(config)}

        keys ->
          Table.publish_keys(state.namespace, config, keys, state.keys, version)
          %{state | config: config, version: version}
      end

    Enum.reduce(applied, state, fn {from, path, value, previous, _changed}, state ->
      notify(state.subscribers, {:config_updated, path, value})

      metrics = %{
        state.metrics
        | updates_count: state.metrics.updates_count + 1,
          last_update: now
      }

      data = %{path: path, new_value: value, previous_value: previous, timestamp: now}
      {state, id} = Audit.event(%{state | metrics: metrics}, :config_updated, data)
      GenServer.reply(from, {:ok, id})
      state
    end)
  end

  defp changed_keys([], keys), do: keys
  defp changed_keys([{_, _, _, _, :all} | _], _keys), do: :all

  defp changed_keys([{_, _, _, _, {:key, key}} | rest], keys),
    do: changed_keys(rest, if(key in keys, do: keys, else: [key | keys]))

  # At most this many waiting updates join a batch, and none are looked
  # for past this many waiting messages (the look scans the mailbox).
  @batch 32
  @scan 256

  defp queued_updates do
    case Process.info(self(), :message_queue_len) do
      {:message_queue_len, n} when n > 0 and n <= @scan -> take_updates(@batch, [])
      _ -> []
    end
  end

  defp take_updates(0, acc), do: Enum.reverse(acc)

  defp take_updates(n, acc) do
    receive do
      {:"$gen_call", from, {:update_config, path, value, :audit_id}} when is_list(path) ->
        take_updates(n - 1, [{from, path, value} | acc])
    after
      0 -> Enum.reverse(acc)
    end
  end

  defp apply_reset(state) do
    config = Config.new()
    version = state.version + 1
    Table.publish(state.namespace, config, version, state.config)
    state = %{state | version: version, keys: Map.keys(config)}
    notify(state.subscribers, {:config_reset, config})
    n = state.metrics.updates_count

    {state, id} =
      Audit.event(%{state | config: config}, :config_reset, %{
        timestamp: now_ms(),
        reset_from_updates_count: n
      })

    counters = [{[:foundation, :config_resets], %{reset_from_updates_count: n}}]
    {state, counters ++ Audit.stored(:config_reset, id)}
  end

  defp notify([], _message), do: :ok

  defp notify(subscribers, message),
    do: Enum.each(subscribers, &send(&1, {:config_notification, message}))

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

  defp now_ms, do: :erlang.monotonic_time(:millisecond)
end
