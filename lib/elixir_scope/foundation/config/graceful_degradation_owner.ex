defmodule ElixirScope.Foundation.Config.GracefulDegradation.Owner do
  @moduledoc false
  # Owns :config_fallback_cache and runs the periodic maintenance jobs
  # (pending-update retries, TTL cleanup) under
  # ElixirScope.Foundation.TaskSupervisor, one job of each kind at a time.
  use GenServer

  alias ElixirScope.Foundation.Config.GracefulDegradation

  @table :config_fallback_cache

  def start_link(opts \\ []), do: GenServer.start_link(__MODULE__, opts, name: __MODULE__)

  @doc false
  def create_table do
    case Process.whereis(__MODULE__) do
      nil -> new_table()
      pid -> GenServer.call(pid, :create_table)
    end

    :ok
  end

  @doc false
  def delete_table do
    case Process.whereis(__MODULE__) do
      nil -> safe_delete()
      pid -> GenServer.call(pid, :delete_table)
    end

    :ok
  end

  @impl true
  def init(_opts) do
    new_table()
    schedule(:retry)
    schedule(:cleanup)
    {:ok, %{jobs: %{}}}
  end

  @impl true
  def handle_call(:create_table, _from, state), do: {:reply, new_table(), state}
  def handle_call(:delete_table, _from, state), do: {:reply, safe_delete(), state}

  @impl true
  def handle_info(kind, state) when kind in [:retry, :cleanup] do
    schedule(kind)
    {:noreply, maybe_run(kind, state)}
  end

  def handle_info({ref, _result}, state) when is_reference(ref) do
    Process.demonitor(ref, [:flush])
    {:noreply, drop_job(state, ref)}
  end

  def handle_info({:DOWN, ref, :process, _pid, _reason}, state),
    do: {:noreply, drop_job(state, ref)}

  def handle_info(_other, state), do: {:noreply, state}

  defp maybe_run(kind, state) do
    if Map.has_key?(state.jobs, kind) or not work?(kind) do
      state
    else
      case start_job(kind) do
        {:ok, ref} -> %{state | jobs: Map.put(state.jobs, kind, ref)}
        :error -> state
      end
    end
  end

  defp work?(:retry),
    do:
      table?() and :ets.select_count(@table, [{{{:pending_update, :_}, :_, :_}, [], [true]}]) > 0

  defp work?(:cleanup), do: table?()

  defp start_job(kind) do
    fun =
      case kind do
        :retry -> &GracefulDegradation.retry_pending_updates/0
        :cleanup -> &GracefulDegradation.cleanup_expired_cache/0
      end

    task = Task.Supervisor.async_nolink(ElixirScope.Foundation.TaskSupervisor, fun)
    {:ok, task.ref}
  catch
    :exit, _ -> :error
  end

  defp drop_job(state, ref),
    do: %{state | jobs: state.jobs |> Enum.reject(fn {_k, r} -> r == ref end) |> Map.new()}

  defp schedule(kind) do
    settings = Application.get_env(:elixir_scope_foundation, :config_fallback, [])

    interval =
      case kind do
        :retry -> Keyword.get(settings, :retry_interval_ms, 1_000)
        :cleanup -> Keyword.get(settings, :cleanup_interval_ms, 60_000)
      end

    Process.send_after(self(), kind, interval)
  end

  defp new_table do
    _ =
      if table?(),
        do: :ok,
        else: :ets.new(@table, [:named_table, :public, :set, {:read_concurrency, true}])

    :ok
  end

  defp safe_delete do
    if table?(), do: :ets.delete(@table)
    :ok
  rescue
    ArgumentError -> :ok
  end

  defp table?, do: :ets.whereis(@table) != :undefined
end
