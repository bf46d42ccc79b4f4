defmodule ElixirScope.Foundation.Integration.ConfigDropInTest do
  # What a caller of the original relies on: an update's audit event is in
  # the store when update/2 returns (whatever the EventStore process is
  # doing), a normal application restart starts from scratch (metrics,
  # config) while a crash keeps state, and configs never go through
  # :persistent_term.
  use ExUnit.Case, async: false
  @moduletag :capture_log

  import ElixirScope.Foundation.TestSupport.Eventually

  alias ElixirScope.Foundation.{Config, Events, ProcessRegistry, ServiceRegistry, Telemetry}
  alias ElixirScope.Foundation.Services.{ConfigServer, EventStore, TelemetryService}
  alias ElixirScope.Foundation.TestSupervisor

  @app :elixir_scope_foundation

  setup do
    :ok = ConfigServer.reset_state()
    :ok = EventStore.reset_state()
    on_exit(fn -> ConfigServer.reset_state() end)
    :ok
  end

  defp audits(type, opts \\ []) do
    {:ok, events} = EventStore.query(%{event_type: type}, opts)
    events
  end

  defp audit_for(value, opts \\ []),
    do: Enum.find(audits(:config_updated, opts), &(&1.data.new_value == value))

  defp at(config, []), do: config
  defp at(config, path), do: get_in(config, path)

  # Errors carry the time they were made.
  defp untimed({:error, error}), do: {:error, %{error | timestamp: nil}}
  defp untimed(other), do: other

  defp stop_store(opts) do
    EventStore.stop(opts)
  catch
    :exit, _ -> :ok
  end

  defp isolated do
    ref = make_ref()
    {:ok, _pids} = TestSupervisor.start_isolated_services(ref)
    on_exit(fn -> TestSupervisor.cleanup_namespace(ref) end)
    {:test, ref}
  end

  describe "audit read-your-writes" do
    test "the audit event is queryable as soon as update/2 returns, from any process" do
      for value <- 101..150 do
        :ok = Config.update([:interface, :max_results], value)
        # No waiting: the event is stored before the reply.
        assert %{data: %{path: [:interface, :max_results], previous_value: {:ok, _}}} =
                 audit_for(value)
      end

      :ok = Config.update([:interface, :max_results], 7_777)

      # A process that starts only now sees it through every read function.
      event =
        Task.async(fn -> audit_for(7_777) end)
        |> Task.await()

      assert %{event_type: :config_updated, correlation_id: nil} = event
      assert Task.async(fn -> EventStore.get(event.event_id) end) |> Task.await() == {:ok, event}
      assert Task.async(fn -> Events.get(event.event_id) end) |> Task.await() == {:ok, event}

      {:ok, server} = ServiceRegistry.lookup(:production, :config_server)
      assert event.pid == server
      assert %DateTime{time_zone: "Etc/UTC"} = event.wall_time

      :ok = Config.reset()
      assert [%{data: %{reset_from_updates_count: n}}] = audits(:config_reset)
      assert n >= 51
    end

    test "audit events of a correlation-id query stay consistent" do
      # Audit events carry no correlation id (as built by Events.new_event/2).
      :ok = Config.update([:dev, :verbose_logging], true)
      assert {:ok, []} = EventStore.get_by_correlation("no-such-correlation")
      assert %{correlation_id: nil} = audit_for(true)
    end

    test "with the EventStore process suspended, update returns and its audit is visible" do
      {:ok, store} = ServiceRegistry.lookup(:production, :event_store)
      {:ok, s0} = ConfigServer.status()
      :sys.suspend(store)

      try do
        task = Task.async(fn -> Config.update([:interface, :max_results], 4_242) end)

        # Blocking on the suspended process would leave the task hanging.
        case Task.yield(task, 1_000) do
          {:ok, result} ->
            assert result == :ok

          nil ->
            Task.shutdown(task, :brutal_kill)
            flunk("Config.update/2 blocked on the suspended EventStore process")
        end

        # Reads do not go through the process either.
        assert %{data: %{new_value: 4_242}} = audit_for(4_242)
      after
        :sys.resume(store)
      end

      {:ok, s1} = ConfigServer.status()
      assert s1.audit_sent == s0.audit_sent + 1
    end

    test "with the EventStore process dead, the audit lands in its store; the restart sees it" do
      ns = {:test, make_ref()}
      opts = [namespace: ns]
      Process.flag(:trap_exit, true)
      {:ok, config} = ConfigServer.start_link(opts)
      {:ok, store} = EventStore.start_link(opts)
      on_exit(fn -> stop_store(opts) end)

      Process.exit(store, :kill)
      assert_receive {:EXIT, ^store, :killed}
      refute EventStore.available?(opts)

      assert ConfigServer.update([:dev, :debug_mode], true, opts) == :ok
      assert %{data: %{new_value: true}} = audit_for(true, opts)

      {:ok, restarted} = EventStore.start_link(opts)
      assert restarted != store
      assert %{data: %{new_value: true}} = audit_for(true, opts)
      assert {:ok, %{audit_sent: 1, audit_skipped: 0}} = ConfigServer.status(opts)
      GenServer.stop(config)
    end

    test "after a normal EventStore stop no audit is stored (no store), as in the original" do
      ns = isolated()
      opts = [namespace: ns]
      :ok = EventStore.stop(opts)
      assert eventually(fn -> not EventStore.available?(opts) end)

      assert ConfigServer.update([:dev, :debug_mode], true, opts) == :ok

      assert {:ok, %{audit_sent: 0, audit_skipped: 1, audit_failures: 0}} =
               ConfigServer.status(opts)

      {:ok, _} = EventStore.start_link(opts)
      on_exit(fn -> stop_store(opts) end)
      assert audits(:config_updated, opts) == []
    end

    test "updates waiting together: each applied in one order, audited, notified and answered" do
      ns = isolated()
      opts = [namespace: ns]
      {:ok, server} = ServiceRegistry.lookup(ns, :config_server)
      :ok = ConfigServer.subscribe(opts)
      path = [:interface, :max_results]

      # Queued behind a suspended server, the calls are handled together
      # once it resumes.
      :ok = :sys.suspend(server)

      updates =
        for(i <- 1..8, do: {path, 100 + i}) ++
          [{[:dev, :debug_mode], true}, {path, -1}, {[:ai, :provider], :nope}]

      tasks = for {p, v} <- updates, do: Task.async(fn -> ConfigServer.update(p, v, opts) end)

      assert eventually(fn ->
               Process.info(server, :message_queue_len) >= {:message_queue_len, length(tasks)}
             end)

      :ok = :sys.resume(server)
      results = Enum.map(tasks, &Task.await/1)

      assert Enum.count(results, &(&1 == :ok)) == 9
      assert [{:error, %{}}, {:error, %{}}] = Enum.reject(results, &(&1 == :ok))

      notified =
        for _ <- 1..9 do
          assert_receive {:config_notification, {:config_updated, p, v}}, 1_000
          {p, v}
        end

      refute_receive {:config_notification, _}, 50
      assert Enum.sort(notified) == Enum.sort(Enum.take(updates, 9))

      # The audit events (by id) and the notifications have one order, and
      # each event's previous value is what the update before it left.
      stored = Enum.sort_by(audits(:config_updated, opts), & &1.event_id)
      assert for(e <- stored, do: {e.data.path, e.data.new_value}) == notified

      max_results = for {^path, v} <- notified, do: v
      previous = for e <- stored, e.data.path == path, do: e.data.previous_value
      assert previous == Enum.map([1_000 | Enum.drop(max_results, -1)], &{:ok, &1})
      assert ConfigServer.get(path, opts) == {:ok, List.last(max_results)}
      assert ConfigServer.get([:dev, :debug_mode], opts) == {:ok, true}

      assert {:ok, %{updates_count: 9, audit_sent: 9, audit_failures: 0}} =
               ConfigServer.status(opts)
    end
  end

  describe "published config" do
    test "no namespace's config lives in :persistent_term" do
      ns = isolated()
      :ok = ConfigServer.update([:dev, :debug_mode], true, namespace: ns)
      :ok = Config.update([:dev, :verbose_logging], true)
      assert {:ok, true} = ConfigServer.get([:dev, :debug_mode], namespace: ns)

      # (Other services' handles are not configs.)
      for {key, value} <- :persistent_term.get() do
        refute match?({ConfigServer, _}, key), inspect(key)
        refute match?(%ElixirScope.Foundation.Types.Config{}, value), inspect(key)
      end
    end

    test "reads of every updatable path and error paths give the whole-config answers" do
      ns = isolated()
      opts = [namespace: ns]
      {:ok, config} = ConfigServer.get(opts)

      for path <- ConfigServer.updatable_paths() ++ [[], [:ai], [:storage, :hot, :max_events]],
          do: assert(ConfigServer.get(path, opts) == {:ok, at(config, path)})

      assert {:error, %{error_type: :config_path_not_found}} =
               ConfigServer.get([:ai, :nope], opts)

      assert {:error, %{error_type: :config_path_not_found}} =
               ConfigServer.get([:dev, :debug_mode, :deeper], opts)

      assert {:error, %{error_type: :config_path_not_found}} = ConfigServer.get(["ai"], opts)
    end

    test "a value read before (and cached by the reader) never hides a completed update" do
      path = [:interface, :max_results]
      parent = self()

      reader =
        spawn_link(fn ->
          for _ <- 1..200 do
            {:ok, seen} = Config.get(path)
            {:ok, _} = Config.get(path)
            send(parent, {:seen, seen})
            receive do: ({:updated, value} -> send(parent, {:after, Config.get(path), value}))
          end
        end)

      for _ <- 1..200 do
        assert_receive {:seen, seen}, 5_000
        :ok = Config.update(path, seen + 1)
        send(reader, {:updated, seen + 1})
        assert_receive {:after, {:ok, value}, value}, 5_000
      end
    end

    test "a normal stop of the server drops what readers had cached" do
      path = [:dev, :debug_mode]
      {:ok, env_config} = ElixirScope.Foundation.Logic.ConfigLogic.build_config([])
      default = env_config.dev.debug_mode
      {:ok, ^default} = Config.get(path)
      :ok = Config.update(path, not default)
      assert Config.get(path) == {:ok, not default}
      {:ok, pid} = ServiceRegistry.lookup(:production, :config_server)

      :ok = ConfigServer.stop()

      assert eventually(fn ->
               match?({:ok, p} when p != pid, ServiceRegistry.lookup(:production, :config_server))
             end)

      # Rebuilt from the env: the cached value is gone.
      assert Config.get(path) == {:ok, default}
    end

    test "a whole-config read never mixes two publications" do
      ns = isolated()
      opts = [namespace: ns]
      :ok = ConfigServer.update([:interface, :max_results], 1, opts)
      :ok = ConfigServer.update([:capture, :processing, :batch_size], 1, opts)

      # Each round sets max_results to i, then batch_size to i: every
      # published config has batch_size == max_results or max_results - 1.
      reader =
        Task.async(fn ->
          Stream.repeatedly(fn -> ConfigServer.get(opts) end)
          |> Enum.take(20_000)
          |> Enum.map(fn {:ok, c} ->
            {c.interface.max_results, c.capture.processing.batch_size}
          end)
          |> Enum.reject(fn {m, b} -> b == m or b == m - 1 end)
        end)

      for i <- 2..3_000 do
        :ok = ConfigServer.update([:interface, :max_results], i, opts)
        :ok = ConfigServer.update([:capture, :processing, :batch_size], i, opts)
      end

      assert Task.await(reader, 30_000) == []
    end

    test "updates give exactly the results of ConfigLogic.update_config/3" do
      ns = isolated()
      opts = [namespace: ns]

      values =
        [true, false, nil, 0, 1, -1, 2, 0.0, -0.0, 0.5, 1.0, 1.5, -0.5, 10_000] ++
          [2 ** 70, -(2 ** 70), :fast, "1", [1], %{}, {1}]

      for path <- ConfigServer.updatable_paths() ++ [[:ai, :provider], [:dev]],
          value <- values do
        {:ok, before} = ConfigServer.get(opts)
        expected = ElixirScope.Foundation.Logic.ConfigLogic.update_config(before, path, value)

        case expected do
          {:ok, new_config} ->
            assert ConfigServer.update(path, value, opts) == :ok
            assert ConfigServer.get(opts) == {:ok, new_config}
            assert ConfigServer.get(path, opts) == {:ok, value}

          {:error, error} ->
            assert untimed(ConfigServer.update(path, value, opts)) == untimed({:error, error}),
                   "#{inspect(path)} <- #{inspect(value)}"

            assert ConfigServer.get(opts) == {:ok, before}
        end
      end
    end

    test "the first update drops start options from the config, as put_in/3 did" do
      ns = isolated()
      opts = [namespace: ns]
      assert {:ok, ^ns} = ConfigServer.get([:namespace], opts)
      :ok = ConfigServer.update([:dev, :debug_mode], true, opts)

      assert {:error, %{error_type: :config_path_not_found}} =
               ConfigServer.get([:namespace], opts)

      {:ok, config} = ConfigServer.get(opts)
      refute Map.has_key?(config, :namespace)
    end

    test "a killed server resumes from the last published config; a normal stop forgets it" do
      ns = isolated()
      opts = [namespace: ns]
      :ok = ConfigServer.update([:interface, :max_results], 4_321, opts)
      {:ok, pid} = ProcessRegistry.lookup(ns, :config_server)
      Process.exit(pid, :kill)

      assert eventually(fn ->
               match?({:ok, new} when new != pid, ProcessRegistry.lookup(ns, :config_server))
             end)

      assert ConfigServer.get([:interface, :max_results], opts) == {:ok, 4_321}
      assert {:ok, %{updates_count: 0}} = ConfigServer.status(opts)
    end
  end

  describe "application restart" do
    @name [:config_drop_in_test, :restarts]

    defp count do
      {:ok, metrics} = Telemetry.get_metrics()
      get_in(metrics, [:config_drop_in_test, :restarts, :count]) || 0
    end

    test "a normal stop + start gives fresh metrics, config and store; a crash keeps metrics" do
      :ok = TelemetryService.reset_metrics()
      for _ <- 1..1_000, do: :ok = Telemetry.emit_counter(@name, %{})
      assert count() == 1_000

      # A kill of TelemetryService keeps them.
      {:ok, telemetry} = ServiceRegistry.lookup(:production, :telemetry_service)
      Process.exit(telemetry, :kill)

      assert eventually(fn ->
               match?(
                 {:ok, p} when p != telemetry,
                 ServiceRegistry.lookup(:production, :telemetry_service)
               )
             end)

      assert eventually(fn -> count() == 1_000 end)

      :ok = Config.update([:dev, :debug_mode], true)
      {:ok, _} = Events.store(elem(Events.new_event(:restart_probe, %{}), 1))

      :ok = Application.stop(@app)
      {:ok, _} = Application.ensure_all_started(@app)

      assert count() == 0
      assert {:ok, metrics} = Telemetry.get_metrics()
      assert get_in(metrics, [:foundation, :config_updates]) in [nil, 0]
      # The config is rebuilt from the env, the store starts empty.
      {:ok, env_config} = ElixirScope.Foundation.Logic.ConfigLogic.build_config([])
      assert Config.get([:dev, :debug_mode]) == {:ok, env_config.dev.debug_mode}
      assert {:ok, []} = Events.query(%{event_type: :restart_probe})

      # Counting starts again from zero.
      for _ <- 1..10, do: :ok = Telemetry.emit_counter(@name, %{})
      assert count() == 10
    end
  end
end
