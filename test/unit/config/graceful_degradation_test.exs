defmodule ElixirScope.Foundation.Config.GracefulDegradationTest do
  use ExUnit.Case, async: false

  import ElixirScope.Foundation.TestSupport.Eventually

  alias ElixirScope.Foundation.Config
  alias ElixirScope.Foundation.Config.GracefulDegradation, as: GD
  alias ElixirScope.Foundation.Services.ConfigServer
  alias ElixirScope.Foundation.Types.Error

  @table :config_fallback_cache
  @sup ElixirScope.Foundation.Supervisor

  setup do
    :ok = GD.initialize_fallback_system()
    :ets.delete_all_objects(@table)
    :ok = ConfigServer.reset_state()

    on_exit(fn ->
      Supervisor.restart_child(@sup, ConfigServer)
      GD.initialize_fallback_system()
      ConfigServer.reset_state()
    end)

    :ok
  end

  defp stop_config_server, do: :ok = Supervisor.terminate_child(@sup, ConfigServer)
  defp start_config_server, do: {:ok, _} = Supervisor.restart_child(@sup, ConfigServer)

  test "table shape; initialize twice; cleanup removes it" do
    assert :ets.info(@table, :type) == :set
    assert GD.initialize_fallback_system() == :ok
    assert GD.cleanup_fallback_system() == :ok
    assert :ets.info(@table) == :undefined
    assert GD.get_cache_stats() == %{error: :table_not_found}
    assert GD.cleanup_fallback_system() == :ok
    assert GD.initialize_fallback_system() == :ok
  end

  test "the table outlives the process that initialized it" do
    :ok = GD.cleanup_fallback_system()
    Task.async(fn -> GD.initialize_fallback_system() end) |> Task.await()
    assert :ets.info(@table, :type) == :set
    owner = :ets.info(@table, :owner)
    assert owner == Process.whereis(GD.Owner)
  end

  test "get_with_fallback/1 caches and serves the cache while the service is down" do
    assert GD.get_with_fallback([:ai, :provider]) == {:ok, :mock}
    stop_config_server()
    assert GD.get_with_fallback([:ai, :provider]) == {:ok, :mock}

    assert {:error,
            %Error{error_type: :config_unavailable, message: "Configuration not available"} = e} =
             GD.get_with_fallback([:dev, :debug_mode])

    assert {e.category, e.subcategory, e.severity, e.context} ==
             {:config, :access, :medium, %{path: [:dev, :debug_mode]}}
  end

  test "expired cache rows give 'Configuration cache expired'" do
    stop_config_server()
    :ets.insert(@table, {{:config_cache, [:x]}, 1, System.system_time(:second) - 7200})

    assert {:error,
            %Error{error_type: :config_unavailable, message: "Configuration cache expired"}} =
             GD.get_with_fallback([:x])

    assert :ets.lookup(@table, {:config_cache, [:x]}) == []
  end

  test "get_with_fallback/1 raises when the table is missing" do
    :ok = GD.cleanup_fallback_system()
    stop_config_server()
    assert_raise ArgumentError, fn -> GD.get_with_fallback([:ai, :provider]) end
  end

  test "update_with_fallback/2 success and failure" do
    assert GD.update_with_fallback([:dev, :debug_mode], true) == :ok
    assert Config.get([:dev, :debug_mode]) == {:ok, true}

    assert {:error, %Error{error_type: :config_update_forbidden}} =
             GD.update_with_fallback([:ai, :provider], :openai)

    assert GD.get_cache_stats().pending_update_entries == 1
  end

  test "retry_pending_updates/0 applies pending updates and drops permanent failures" do
    stop_config_server()

    assert {:error, %Error{error_type: :service_unavailable}} =
             GD.update_with_fallback([:dev, :verbose_logging], true)

    assert GD.retry_pending_updates() == :ok
    assert GD.get_cache_stats().pending_update_entries == 1

    start_config_server()

    :ets.insert(
      @table,
      {{:pending_update, [:ai, :provider]}, :openai, System.system_time(:second)}
    )

    assert GD.retry_pending_updates() == :ok
    assert Config.get([:dev, :verbose_logging]) == {:ok, true}
    assert GD.get_cache_stats().pending_update_entries == 0
  end

  test "pending updates are retried periodically, without anyone calling retry" do
    # Default retry interval: 1 s (eventually/2 waits up to 3 s).
    stop_config_server()
    {:error, _} = GD.update_with_fallback([:dev, :verbose_logging], true)
    start_config_server()

    assert eventually(fn -> Config.get([:dev, :verbose_logging]) == {:ok, true} end, 3_000)
    assert eventually(fn -> GD.get_cache_stats().pending_update_entries == 0 end, 3_000)
  end

  test "cleanup_expired_cache/0 removes rows older than the TTL" do
    old = System.system_time(:second) - 7200
    :ets.insert(@table, {{:config_cache, [:old]}, 1, old})
    :ets.insert(@table, {{:pending_update, [:old]}, 1, old})
    :ets.insert(@table, {{:config_cache, [:new]}, 1, System.system_time(:second)})
    assert GD.cleanup_expired_cache() == :ok
    assert GD.get_cache_stats().total_entries == 1

    :ok = GD.cleanup_fallback_system()
    assert_raise ArgumentError, fn -> GD.cleanup_expired_cache() end
  end

  test "get_cache_stats/0 keys" do
    {:ok, _} = GD.get_with_fallback([:ai, :provider])
    stats = GD.get_cache_stats()
    assert stats.total_entries == 1
    assert stats.config_cache_entries == 1
    assert stats.pending_update_entries == 0
    assert is_integer(stats.memory_words)
  end
end
