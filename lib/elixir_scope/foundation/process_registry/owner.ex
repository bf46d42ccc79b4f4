defmodule ElixirScope.Foundation.ProcessRegistry.Owner do
  @moduledoc false
  # Owns the ProcessRegistry's ETS tables so they outlive any caller:
  #   :process_registry_backup   {{ns, service}, pid}        (public set)
  #   :process_registry_waiters  {{ns, service}, pid, tag}   (public bag)
  #   :elixir_scope_foundation_handles   {{service_module, {:test, ref}}, entry}
  #       native handles of test namespaces' EventStore/TelemetryService
  #       (public set; see Services.Handles)
  #   :elixir_scope_foundation_sandbox   {pid | :shared, namespace, owner_pid}
  #       sandbox owners and allowances (public set; see Sandbox)
  # Started by the application supervisor before the Registry. Callers read and
  # write the tables directly; this process only keeps them alive.
  use GenServer

  alias ElixirScope.Foundation.Sandbox
  alias ElixirScope.Foundation.Services.Handles

  @backup :process_registry_backup
  @waiters :process_registry_waiters

  def start_link(opts \\ []), do: GenServer.start_link(__MODULE__, opts, name: __MODULE__)

  @doc false
  # Adds the caller as a waiter for `key`; notified with {tag, {:registered, pid}}.
  def add_waiter(key, tag) do
    :ets.insert(@waiters, {key, self(), tag})
    :ok
  end

  @doc false
  def remove_waiter(key, tag) do
    :ets.delete_object(@waiters, {key, self(), tag})
    :ok
  rescue
    ArgumentError -> :ok
  end

  @doc false
  # Wakes every process waiting for `key`. Runs in the caller; never raises.
  def notify(key, pid) do
    for {_key, waiter, tag} <- :ets.take(@waiters, key),
        do: send(waiter, {tag, {:registered, pid}})

    :ok
  rescue
    ArgumentError -> :ok
  end

  @impl true
  def init(_opts) do
    _ = :ets.new(@backup, [:named_table, :public, :set, read_concurrency: true])
    _ = :ets.new(@waiters, [:named_table, :public, :bag, write_concurrency: true])
    _ = :ets.new(Handles.table(), [:named_table, :public, :set, read_concurrency: true])
    # No read_concurrency: on this small table it made lookups dearer, not
    # cheaper (bench/sandbox.exs; figure in docs/benchmarks.md).
    _ = :ets.new(Sandbox.table(), [:named_table, :public, :set])
    {:ok, %{}}
  end
end
