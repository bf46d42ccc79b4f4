defmodule ElixirScope.Foundation.ServiceRegistry do
  @moduledoc """
  Service-level API over `ElixirScope.Foundation.ProcessRegistry`: error
  structs, health checks, waiting for a service, logging and telemetry.

  ## Telemetry events

  Emitted through `ElixirScope.Foundation.Services.TelemetryService.execute/3`
  (which records them and forwards them to `:telemetry.execute/3` when the
  host has the `:telemetry` library loaded). A failing or raising handler never
  breaks a registration or a lookup.

    * `[:elixir_scope, :foundation, :registry, :register]` on every
      `register/3`. Measurements: `%{count: 1}`. Metadata:
      `%{namespace: namespace, service: atom, result: :ok | :error}`.
    * `[:elixir_scope, :foundation, :registry, :lookup]` on every `lookup/2`.
      Measurements: `%{duration: integer}` (native time units, > 0).
      Metadata: `%{namespace: namespace, service: atom, result: :ok | :error}`.

  `:debug_registry` (app env, see `ElixirScope.Foundation.Env`; read at call time) only
  adds debug logs; `:test_mode` silences the info logs of
  `cleanup_test_namespace/1`.
  """

  require Logger

  alias ElixirScope.Foundation.{ErrorTable, ProcessRegistry}
  alias ElixirScope.Foundation.ProcessRegistry.Owner
  alias ElixirScope.Foundation.Services.TelemetryService
  alias ElixirScope.Foundation.Types.Error

  @task_supervisor ElixirScope.Foundation.TaskSupervisor
  @register_event [:elixir_scope, :foundation, :registry, :register]
  @lookup_event [:elixir_scope, :foundation, :registry, :lookup]

  @typedoc "A registry namespace."
  @type namespace :: ProcessRegistry.namespace()
  @typedoc "A service name."
  @type service_name :: ProcessRegistry.service_name()

  @typedoc "Result of `health_check/3`."
  @type health_result ::
          {:ok, pid()}
          | {:error, Error.t()}
          | {:error, :process_dead | :health_check_timeout}
          | {:error, {:health_check_failed, term()}}
          | {:error, {:health_check_error, Exception.t()}}
          | {:error, {:health_check_crashed, term()}}

  @doc "Registers `pid` as `service` in `namespace` (see `ProcessRegistry.register/3`)."
  @spec register(namespace(), service_name(), pid()) ::
          :ok | {:error, {:already_registered, pid()}}
  def register(namespace, service, pid) when is_pid(pid) do
    result = ProcessRegistry.register(namespace, service, pid)
    debug(fn -> "register #{inspect({namespace, service})} -> #{inspect(result)}" end)
    status = if result == :ok, do: :ok, else: :error
    emit(@register_event, %{count: 1}, %{namespace: namespace, service: service, result: status})
    result
  end

  @doc """
  Finds `service` in `namespace`.

  Not found → `{:error, %Types.Error{code: 5001, error_type: :service_not_found}}`.
  """
  @spec lookup(namespace(), service_name()) :: {:ok, pid()} | {:error, Error.t()}
  def lookup(namespace, service) do
    start = System.monotonic_time()
    found = ProcessRegistry.lookup(namespace, service)
    duration = max(System.monotonic_time() - start, 1)
    status = if found == :error, do: :error, else: :ok

    emit(@lookup_event, %{duration: duration}, %{
      namespace: namespace,
      service: service,
      result: status
    })

    case found do
      {:ok, pid} -> {:ok, pid}
      :error -> {:error, not_found_error(namespace, service)}
    end
  end

  defp not_found_error(namespace, service) do
    ErrorTable.named(:service_not_found)
    |> Keyword.merge(
      message: "Service #{inspect(service)} not found in namespace #{inspect(namespace)}",
      context: %{namespace: namespace, service: service}
    )
    |> Error.new()
  end

  @doc "Unregisters `service` (see `ProcessRegistry.unregister/2`); always `:ok`."
  @spec unregister(namespace(), service_name()) :: :ok
  def unregister(namespace, service) do
    debug(fn -> "unregister #{inspect({namespace, service})}" end)
    ProcessRegistry.unregister(namespace, service)
  end

  @doc "Names of the live services of `namespace`."
  @spec list_services(namespace()) :: [service_name()]
  def list_services(namespace), do: ProcessRegistry.list_services(namespace)

  @doc "The `:via` name of `service` in `namespace`."
  @spec via_tuple(namespace(), service_name()) :: {:via, Registry, {module(), term()}}
  def via_tuple(namespace, service), do: ProcessRegistry.via_tuple(namespace, service)

  @doc """
  Checks that `service` is registered, alive and, with a `:health_check`
  function, healthy.

  Options:
    * `:health_check` - `fun(pid)`; `:ok`, `{:ok, _}` or `true` mean healthy.
    * `:timeout` - milliseconds to wait for the function (default 5000).
    * `:debug_health_check` - log the steps (default false).

  The function runs in an unlinked task under
  `ElixirScope.Foundation.TaskSupervisor` that catches everything it raises,
  throws or exits with; on timeout the task is killed. The caller's
  `trap_exit` flag is never touched and no `{:EXIT, ...}` message is left in
  its mailbox, even when the caller traps exits.
  """
  @spec health_check(namespace(), service_name(), keyword()) :: health_result()
  def health_check(namespace, service, opts \\ []) do
    opts = Keyword.validate!(opts, health_check: nil, timeout: 5000, debug_health_check: false)

    with {:ok, pid} <- lookup(namespace, service),
         true <- Process.alive?(pid) || {:error, :process_dead} do
      result = run_check(pid, opts[:health_check], opts[:timeout])

      if opts[:debug_health_check],
        do: Logger.debug("health_check #{inspect(service)}: #{inspect(result)}")

      result
    end
  end

  defp run_check(pid, nil, _timeout), do: {:ok, pid}

  # Unlinked task under the application's Task.Supervisor: no link, so no
  # {:EXIT, ...} message can reach the caller even when it traps exits.
  defp run_check(pid, fun, timeout) when is_function(fun, 1) do
    task = Task.Supervisor.async_nolink(@task_supervisor, fn -> guarded(fun, pid) end)

    case Task.yield(task, timeout) || Task.shutdown(task, :brutal_kill) do
      {:ok, result} -> interpret(result, pid)
      nil -> {:error, :health_check_timeout}
      {:exit, reason} -> {:error, {:health_check_crashed, reason}}
    end
  catch
    :exit, reason -> {:error, {:health_check_crashed, reason}}
  end

  defp guarded(fun, pid) do
    {:returned, fun.(pid)}
  rescue
    e in RuntimeError -> {:error, {:health_check_error, e}}
    e -> {:error, {:health_check_crashed, e}}
  catch
    :exit, reason -> {:error, {:health_check_crashed, reason}}
    :throw, value -> {:error, {:health_check_crashed, {:nocatch, value}}}
  end

  defp interpret({:returned, ok}, pid) when ok in [:ok, true], do: {:ok, pid}
  defp interpret({:returned, {:ok, _}}, pid), do: {:ok, pid}
  defp interpret({:returned, other}, _pid), do: {:error, {:health_check_failed, other}}
  defp interpret({:error, _} = error, _pid), do: error

  @doc """
  Waits until `service` is registered in `namespace`: `{:ok, pid}` as soon as
  it is, `{:error, :timeout}` after `timeout` ms.

  No busy polling: the caller sleeps in `receive` and is woken by
  `ProcessRegistry.register/3` or `ProcessRegistry.notify_registered/3` (which
  the foundation's services call from `init/1`). A registration made through a
  via-tuple by some other process does not notify, so the caller also rechecks
  with an exponential backoff (2 ms doubling up to 100 ms).
  """
  @spec wait_for_service(namespace(), service_name(), non_neg_integer()) ::
          {:ok, pid()} | {:error, :timeout}
  def wait_for_service(namespace, service, timeout \\ 5000) do
    key = {namespace, service}
    tag = make_ref()
    Owner.add_waiter(key, tag)
    deadline = System.monotonic_time(:millisecond) + timeout

    try do
      wait_loop(key, tag, deadline, 2)
    after
      Owner.remove_waiter(key, tag)
      receive do: ({^tag, _} -> :ok), after: (0 -> :ok)
    end
  end

  defp wait_loop({namespace, service} = key, tag, deadline, backoff) do
    case ProcessRegistry.lookup(namespace, service) do
      {:ok, pid} ->
        {:ok, pid}

      :error ->
        remaining = deadline - System.monotonic_time(:millisecond)

        if remaining <= 0 do
          {:error, :timeout}
        else
          receive do
            {^tag, {:registered, _pid}} -> Owner.add_waiter(key, tag)
          after
            min(backoff, remaining) -> :ok
          end

          wait_loop(key, tag, deadline, min(backoff * 2, 100))
        end
    end
  end

  @doc """
  Summary of `namespace`: `%{namespace, services: %{service => %{pid, alive,
  uptime_ms}}, total_services, healthy_services}`.

  As in the original, `uptime_ms` is the current
  `System.monotonic_time(:millisecond)` for live processes (the registry does
  not record start times) and 0 for dead ones.
  """
  @spec get_service_info(namespace()) :: map()
  def get_service_info(namespace) do
    services =
      for {service, pid} <- ProcessRegistry.get_all_services(namespace), into: %{} do
        alive = Process.alive?(pid)
        uptime = if alive, do: System.monotonic_time(:millisecond), else: 0
        {service, %{pid: pid, alive: alive, uptime_ms: uptime}}
      end

    %{
      namespace: namespace,
      services: services,
      total_services: map_size(services),
      healthy_services: Enum.count(services, fn {_s, info} -> info.alive end)
    }
  end

  @doc """
  Stops the processes registered with `register/3` in `{:test, ref}` (see
  `ProcessRegistry.cleanup_test_namespace/1`); returns at once when the
  namespace is empty. Synchronous; always `:ok`.
  """
  @spec cleanup_test_namespace(reference()) :: :ok
  def cleanup_test_namespace(ref) do
    namespace = {:test, ref}

    if get_service_info(namespace).total_services > 0 do
      info(fn -> "Cleaning up test namespace #{inspect(namespace)}" end)
      ProcessRegistry.cleanup_test_namespace(ref)
      info(fn -> "Cleaned up test namespace #{inspect(namespace)}" end)
    end

    :ok
  end

  # -- helpers ---------------------------------------------------------------

  # TelemetryService.execute/3 records in the caller (no registry lookup, so
  # no recursion) and forwards to :telemetry; belt and braces: nothing it
  # raises reaches the registry's caller.
  defp emit(event, measurements, metadata) do
    TelemetryService.execute(event, measurements, metadata)
  catch
    _kind, _reason -> :ok
  end

  defp debug(message_fun) do
    if ElixirScope.Foundation.Env.get(:debug_registry, false), do: Logger.debug(message_fun)
    :ok
  end

  defp info(message_fun) do
    unless ElixirScope.Foundation.Env.get(:test_mode, false), do: Logger.info(message_fun)
    :ok
  end
end
