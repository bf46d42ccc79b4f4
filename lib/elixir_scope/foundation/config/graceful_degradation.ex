defmodule ElixirScope.Foundation.Config.GracefulDegradation do
  @moduledoc """
  Fallback for configuration reads and updates while the config service is
  unavailable.

  ETS table `:config_fallback_cache` (`:public`, `:set`, read concurrency)
  with rows `{{:config_cache, path}, value, unix_seconds}` and
  `{{:pending_update, path}, value, unix_seconds}`; cache TTL 300 s.

  Differences from the original:
    * the table is owned by a supervised process
      (`ElixirScope.Foundation.Config.GracefulDegradation.Owner`, started by
      the application), not by whichever process called first;
    * pending updates are retried and expired rows cleaned **periodically**
      by jobs under `ElixirScope.Foundation.TaskSupervisor` (intervals from
      the `:elixir_scope_foundation` env `:config_fallback` keyword:
      `retry_interval_ms` (default 1000), `cleanup_interval_ms` (default
      60 000), read at each tick);
    * a pending update that fails for a reason other than the service being
      unavailable (validation error, forbidden path) is dropped on retry
      instead of being retried forever.
  """

  alias ElixirScope.Foundation.Config
  alias ElixirScope.Foundation.Config.GracefulDegradation.Owner
  alias ElixirScope.Foundation.Types.Error

  @table :config_fallback_cache
  @ttl 300

  @doc "Creates the fallback table if it is absent (owned by the supervised owner); `:ok`."
  @spec initialize_fallback_system() :: :ok
  def initialize_fallback_system do
    if table?(), do: :ok, else: Owner.create_table()
  end

  @doc "Deletes the fallback table if present; `:ok`."
  @spec cleanup_fallback_system() :: :ok
  def cleanup_fallback_system do
    if table?(), do: Owner.delete_table(), else: :ok
  end

  @doc """
  `Config.get(path)`; the value is cached. On any error the cached value is
  returned if younger than 300 s, else
  `{:error, %Types.Error{error_type: :config_unavailable}}` ("Configuration
  cache expired" / "Configuration not available"). Raises `ArgumentError` if
  the table does not exist.
  """
  @spec get_with_fallback([atom()]) :: {:ok, term()} | {:error, Error.t()}
  def get_with_fallback(path) when is_list(path) do
    case Config.get(path) do
      {:ok, value} ->
        :ets.insert(@table, {{:config_cache, path}, value, now()})
        {:ok, value}

      {:error, _} ->
        cached(path)
    end
  end

  defp cached(path) do
    key = {:config_cache, path}

    case :ets.lookup(@table, key) do
      [{^key, value, at}] when is_integer(at) ->
        if now() - at <= @ttl do
          {:ok, value}
        else
          :ets.delete(@table, key)
          {:error, unavailable(path, "Configuration cache expired")}
        end

      _ ->
        {:error, unavailable(path, "Configuration not available")}
    end
  end

  defp unavailable(path, message) do
    Error.new(
      code: nil,
      error_type: :config_unavailable,
      message: message,
      context: %{path: path},
      category: :config,
      subcategory: :access,
      severity: :medium
    )
  end

  @doc """
  `Config.update(path, value)`: `:ok` clears the pending row of `path`; any
  error stores a pending row (retried periodically) and is returned as is.
  """
  @spec update_with_fallback([atom()], term()) :: :ok | {:error, term()}
  def update_with_fallback(path, value) when is_list(path) do
    case safe_update(path, value) do
      :ok ->
        :ets.delete(@table, {:pending_update, path})
        :ok

      {:error, reason} ->
        :ets.insert(@table, {{:pending_update, path}, value, now()})
        {:error, reason}
    end
  end

  @doc """
  Retries every pending update: success or a permanent failure deletes the
  row; `:service_unavailable` keeps it. Always `:ok` (also when the table is
  missing).
  """
  @spec retry_pending_updates() :: :ok
  def retry_pending_updates do
    for {{:pending_update, path} = key, value, _at} <- pending_rows() do
      case safe_update(path, value) do
        {:error, %Error{error_type: :service_unavailable}} -> :keep
        _ -> :ets.delete(@table, key)
      end
    end

    :ok
  end

  defp pending_rows do
    :ets.match_object(@table, {{:pending_update, :_}, :_, :_})
  rescue
    ArgumentError -> []
  end

  defp safe_update(path, value) do
    Config.update(path, value)
  catch
    :exit, reason ->
      {:error,
       %{
         unavailable(path, "Configuration service exited")
         | error_type: :service_unavailable,
           context: %{path: path, reason: reason}
       }}
  end

  @doc "Deletes every row older than 300 s (cache and pending). Raises if the table is missing."
  @spec cleanup_expired_cache() :: :ok
  def cleanup_expired_cache do
    cutoff = now() - @ttl
    spec = [{{:_, :_, :"$1"}, [{:is_integer, :"$1"}, {:<, :"$1", cutoff}], [true]}]
    :ets.select_delete(@table, spec)
    :ok
  end

  @doc """
  `%{total_entries, memory_words, config_cache_entries, pending_update_entries}`,
  or `%{error: :table_not_found}`.
  """
  @spec get_cache_stats() :: map()
  def get_cache_stats do
    case :ets.info(@table) do
      :undefined ->
        %{error: :table_not_found}

      info ->
        %{
          total_entries: info[:size],
          memory_words: info[:memory],
          config_cache_entries: count({:config_cache, :_}),
          pending_update_entries: count({:pending_update, :_})
        }
    end
  end

  defp count(key_pattern),
    do: :ets.select_count(@table, [{{key_pattern, :_, :_}, [], [true]}])

  defp table?, do: :ets.whereis(@table) != :undefined
  defp now, do: System.system_time(:second)
end
