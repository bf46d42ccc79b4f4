defmodule ElixirScope.Foundation.ProcessRegistry do
  @moduledoc """
  Namespaced process registry built on Elixir's `Registry`.

  Storage is dual, as in the original:

    * the native `Registry` named `ElixirScope.Foundation.ProcessRegistry`
      (`keys: :unique`, one partition per online scheduler), used by
      `via_tuple/2` names;
    * the backup ETS table `:process_registry_backup` (rows
      `{{namespace, service}, pid}`) behind `register/3`, so any pid (not only
      `self()`) can be registered.

  Unlike the original, the backup table is created at boot and owned by a
  supervised process (`ElixirScope.Foundation.ProcessRegistry.Owner`, a child
  of the application supervisor started before the `Registry`), not by the
  first process that happened to touch it; registrations survive the death of
  the caller that made them.

  Namespaces are `:production` or `{:test, reference()}`.
  """

  alias ElixirScope.Foundation.ProcessRegistry.Owner

  @backup :process_registry_backup

  @typedoc "A registry namespace: production, or an isolated test namespace."
  @type namespace :: :production | {:test, reference()}
  @typedoc "A service name."
  @type service_name :: atom()

  @doc "Child spec of the `Registry` (exactly the original's)."
  @spec child_spec(term()) :: Supervisor.child_spec()
  def child_spec(_opts) do
    %{
      id: Registry,
      start:
        {Registry, :start_link,
         [[keys: :unique, name: __MODULE__, partitions: System.schedulers_online()]]},
      type: :supervisor,
      restart: :permanent,
      shutdown: :infinity
    }
  end

  @doc """
  Whether `term` is a namespace: `:production` or `{:test, reference}`. The
  services' `start_link/1` return `{:error, {:invalid_namespace, term}}` for
  anything else (an addition: the original started a service, and published
  its state, under any term).
  """
  @spec namespace?(term()) :: boolean()
  def namespace?(:production), do: true
  def namespace?({:test, ref}), do: is_reference(ref)
  def namespace?(_other), do: false

  @doc "The `:via` name of `service` in `namespace`."
  @spec via_tuple(namespace(), service_name()) :: {:via, Registry, {module(), term()}}
  def via_tuple(namespace, service), do: {:via, Registry, {__MODULE__, {namespace, service}}}

  @doc """
  Registers `pid` as `service` in `namespace` (backup table).

  Returns `:ok` when the slot is free, held by a dead process or already held
  by `pid`; `{:error, {:already_registered, existing_pid}}` when another live
  process holds it. Processes waiting in `ServiceRegistry.wait_for_service/3`
  are notified.
  """
  @spec register(namespace(), service_name(), pid()) ::
          :ok | {:error, {:already_registered, pid()}}
  def register(namespace, service, pid) when is_pid(pid) do
    key = {namespace, service}

    result =
      case :ets.lookup(@backup, key) do
        [{^key, ^pid}] ->
          :ok

        [{^key, existing}] ->
          if Process.alive?(existing),
            do: {:error, {:already_registered, existing}},
            else: insert(key, pid)

        [] ->
          insert(key, pid)
      end

    if result == :ok, do: Owner.notify(key, pid)
    result
  end

  defp insert(key, pid) do
    :ets.insert(@backup, {key, pid})
    :ok
  end

  @doc """
  Tells processes blocked in `ServiceRegistry.wait_for_service/3` that
  `service` is now registered in `namespace` (by `pid`, default the caller).

  `register/3` does this itself; a service that registers through
  `via_tuple/2` calls it from its `init/1` so waiters wake at once instead of
  at their next backoff check. Always `:ok`.
  """
  @spec notify_registered(namespace(), service_name(), pid()) :: :ok
  def notify_registered(namespace, service, pid \\ self()) when is_pid(pid),
    do: Owner.notify({namespace, service}, pid)

  @doc """
  Finds `service` in `namespace`: the `Registry` first, then the backup table.

  A process that stopped is reported `:error` immediately (dead backup rows
  are deleted).
  """
  @spec lookup(namespace(), service_name()) :: {:ok, pid()} | :error
  def lookup(namespace, service) do
    key = {namespace, service}

    case registry_lookup(key) do
      [{pid, _}] -> if Process.alive?(pid), do: {:ok, pid}, else: :error
      [] -> lookup_backup(key)
    end
  end

  # The registry is absent only while the application is stopped.
  defp registry_lookup(key) do
    Registry.lookup(__MODULE__, key)
  rescue
    ArgumentError -> []
  end

  defp lookup_backup(key) do
    case backup_lookup(key) do
      [{^key, pid}] ->
        if Process.alive?(pid) do
          {:ok, pid}
        else
          :ets.delete_object(@backup, {key, pid})
          :error
        end

      [] ->
        :error
    end
  end

  defp backup_lookup(key) do
    :ets.lookup(@backup, key)
  rescue
    ArgumentError -> []
  end

  @doc """
  Removes `service` from the backup table and unregisters the caller's own
  `Registry` key (a via-registered process can only be unregistered by
  itself). Always `:ok`.
  """
  @spec unregister(namespace(), service_name()) :: :ok
  def unregister(namespace, service) do
    key = {namespace, service}

    try do
      :ets.delete(@backup, key)
    rescue
      ArgumentError -> :ok
    end

    Registry.unregister(__MODULE__, key)
  rescue
    ArgumentError -> :ok
  end

  @doc "Names of the live services of `namespace` (order unspecified)."
  @spec list_services(namespace()) :: [service_name()]
  def list_services(namespace), do: namespace |> get_all_services() |> Map.keys()

  @doc """
  Live services of `namespace` as `%{service => pid}`: `Registry` entries
  merged with backup rows (backup wins).
  """
  @spec get_all_services(namespace()) :: %{service_name() => pid()}
  def get_all_services(namespace) do
    registry =
      for {service, pid} <- registry_entries(namespace),
          Process.alive?(pid),
          into: %{},
          do: {service, pid}

    backup =
      for {{_ns, service}, pid} <- backup_entries(namespace),
          Process.alive?(pid),
          into: %{},
          do: {service, pid}

    Map.merge(registry, backup)
  end

  defp registry_entries(namespace) do
    Registry.select(__MODULE__, [
      {{{:"$1", :"$2"}, :"$3", :_}, [{:==, :"$1", {:const, namespace}}], [{{:"$2", :"$3"}}]}
    ])
  rescue
    ArgumentError -> []
  end

  defp backup_entries(namespace) do
    :ets.match_object(@backup, {{namespace, :_}, :_})
  rescue
    ArgumentError -> []
  end

  @doc "Whether `service` is registered (and alive) in `namespace`."
  @spec registered?(namespace(), service_name()) :: boolean()
  def registered?(namespace, service), do: lookup(namespace, service) != :error

  @doc "Number of live services in `namespace`."
  @spec count_services(namespace()) :: non_neg_integer()
  def count_services(namespace), do: namespace |> get_all_services() |> map_size()

  @doc """
  Stops every live process registered with `register/3` in `{:test, ref}` and
  deletes the namespace's backup rows. Synchronous: each process gets
  `:shutdown`, then `:kill` if still alive after 100 ms; the call returns once
  all of them are dead (no helper processes, no fixed sleep). Via-registered
  services are not stopped (their supervisor owns them).
  """
  @spec cleanup_test_namespace(reference()) :: :ok
  def cleanup_test_namespace(ref) do
    namespace = {:test, ref}
    rows = backup_entries(namespace)

    rows
    |> Enum.map(fn {_key, pid} -> pid end)
    |> Enum.filter(&Process.alive?/1)
    |> stop_all()

    Enum.each(rows, &:ets.delete_object(@backup, &1))
    :ok
  end

  defp stop_all([]), do: :ok

  defp stop_all(pids) do
    monitors = Map.new(pids, fn pid -> {Process.monitor(pid), pid} end)
    Enum.each(pids, &Process.exit(&1, :shutdown))
    deadline = System.monotonic_time(:millisecond) + 100
    left = await_down(monitors, deadline)
    Enum.each(left, fn {_ref, pid} -> Process.exit(pid, :kill) end)
    _ = await_down(left, :infinity)
    :ok
  end

  defp await_down(monitors, _deadline) when map_size(monitors) == 0, do: monitors

  defp await_down(monitors, deadline) do
    timeout =
      if deadline == :infinity,
        do: :infinity,
        else: max(deadline - System.monotonic_time(:millisecond), 0)

    receive do
      {:DOWN, ref, :process, _pid, _reason} when is_map_key(monitors, ref) ->
        await_down(Map.delete(monitors, ref), deadline)
    after
      timeout -> monitors
    end
  end

  @doc """
  Registry statistics: `total_services`, `production_services`,
  `test_namespaces` (distinct refs), `partitions`, `partition_count`,
  `memory_usage_bytes` (backup table) and `ets_table_info`. Raises for a
  namespace that is neither `:production` nor `{:test, _}`.
  """
  @spec stats() :: map()
  def stats do
    keys = all_keys()

    %{
      total_services: MapSet.size(keys),
      production_services: Enum.count(keys, &match?({:production, _}, &1)),
      test_namespaces: keys |> Enum.map(&test_ref!/1) |> Enum.reject(&is_nil/1) |> count_uniq(),
      partitions: System.schedulers_online(),
      partition_count: System.schedulers_online(),
      memory_usage_bytes: backup_words() * :erlang.system_info(:wordsize),
      ets_table_info: table_info()
    }
  end

  defp all_keys do
    registry =
      try do
        Registry.select(__MODULE__, [{{:"$1", :"$2", :_}, [], [{{:"$1", :"$2"}}]}])
        |> Enum.filter(fn {_key, pid} -> Process.alive?(pid) end)
      rescue
        ArgumentError -> []
      end

    backup =
      try do
        :ets.tab2list(@backup) |> Enum.filter(fn {_key, pid} -> Process.alive?(pid) end)
      rescue
        ArgumentError -> []
      end

    MapSet.new(registry ++ backup, fn {key, _pid} -> key end)
  end

  defp test_ref!({:production, _}), do: nil
  defp test_ref!({{:test, ref}, _}), do: ref

  defp test_ref!({other, _}),
    do: raise(ArgumentError, "invalid registry namespace: #{inspect(other)}")

  defp count_uniq(list), do: list |> Enum.uniq() |> length()

  defp backup_words do
    case :ets.info(@backup, :memory) do
      :undefined -> 0
      words -> words
    end
  end

  defp table_info do
    case :ets.info(@backup) do
      :undefined ->
        %{backup_table_exists: false}

      info ->
        %{backup_table_exists: true, table_size: info[:size], memory_words: info[:memory]}
    end
  end
end
