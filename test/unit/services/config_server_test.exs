defmodule ElixirScope.Foundation.Services.ConfigServerTest do
  # async: false: uses the :production instance and the :elixir_scope env.
  use ExUnit.Case, async: false

  alias ElixirScope.Foundation.{ServiceRegistry, TestSupervisor}
  alias ElixirScope.Foundation.Services.ConfigServer
  alias ElixirScope.Foundation.Types.{Config, Error}

  setup do
    :ok = ConfigServer.reset_state()
    on_exit(fn -> ConfigServer.reset_state() end)
    :ok
  end

  defp isolated do
    ref = make_ref()
    {:ok, pid} = TestSupervisor.start_service(ConfigServer, ref)
    on_exit(fn -> TestSupervisor.cleanup_namespace(ref) end)
    {{:test, ref}, pid}
  end

  describe "reads" do
    test "get/0 returns the env-merged config" do
      assert {:ok, %Config{} = config} = ConfigServer.get()
      assert config.ai.provider == :mock
      assert config.ai.planning.default_strategy == :fast
    end

    test "get/1 paths" do
      assert ConfigServer.get([:ai, :provider]) == {:ok, :mock}
      assert ConfigServer.get([:dev, :debug_mode]) == {:ok, false}
      assert {:ok, %Config{}} = ConfigServer.get([])

      assert {:error, %Error{error_type: :config_path_not_found}} =
               ConfigServer.get([:invalid, :path])
    end

    test "reads do not go through the server process" do
      {:ok, pid} = ServiceRegistry.lookup(:production, :config_server)
      :sys.suspend(pid)

      try do
        assert ConfigServer.get([:ai, :provider]) == {:ok, :mock}
      after
        :sys.resume(pid)
      end
    end
  end

  describe "update/2" do
    test "accepted update is visible and announced" do
      :ok = ConfigServer.subscribe()
      assert ConfigServer.update([:dev, :debug_mode], true) == :ok
      assert ConfigServer.get([:dev, :debug_mode]) == {:ok, true}

      assert_receive {:config_notification, {:config_updated, [:dev, :debug_mode], true}}, 1_000
    end

    test "boundary values are accepted" do
      for rate <- [0.0, 1.0],
          do: assert(ConfigServer.update([:ai, :planning, :sampling_rate], rate) == :ok)

      for t <- [1, 300_000],
          do: assert(ConfigServer.update([:interface, :query_timeout], t) == :ok)
    end

    test "invalid values: range error, state unchanged, nobody notified" do
      :ok = ConfigServer.subscribe()
      {:ok, before} = ConfigServer.get()

      for rate <- [1.5, 2.0, 5.0] do
        assert {:error, %Error{error_type: :range_error}} =
                 ConfigServer.update([:ai, :planning, :sampling_rate], rate)
      end

      assert ConfigServer.get() == {:ok, before}
      refute_receive {:config_notification, _}, 50
    end

    test "forbidden path" do
      assert {:error, %Error{error_type: :config_update_forbidden}} =
               ConfigServer.update([:ai, :provider], :openai)
    end

    test "updates_count, last_update and audit accounting in status/0" do
      {:ok, s0} = ConfigServer.status()
      :ok = ConfigServer.update([:dev, :verbose_logging], true)
      {:ok, s1} = ConfigServer.status()

      assert s1.updates_count == s0.updates_count + 1
      assert is_integer(s1.last_update)
      audits = fn s -> s.audit_sent + s.audit_failures + s.audit_skipped end
      assert audits.(s1) == audits.(s0) + 1
    end
  end

  describe "reset/0 vs reset_state/0" do
    test "reset restores pure defaults, keeps metrics, notifies" do
      :ok = ConfigServer.update([:dev, :debug_mode], true)
      :ok = ConfigServer.subscribe()
      {:ok, %{updates_count: n}} = ConfigServer.status()

      assert ConfigServer.reset() == :ok
      assert ConfigServer.get([:dev, :debug_mode]) == {:ok, false}
      # Pure defaults: the test env's :fast strategy is gone.
      assert ConfigServer.get([:ai, :planning, :default_strategy]) == {:ok, :balanced}
      assert ConfigServer.get([:dev, :performance_monitoring]) == {:ok, true}
      assert {:ok, %{updates_count: ^n}} = ConfigServer.status()
      assert_receive {:config_notification, {:config_reset, %Config{} = config}}
      assert config == Config.new()
    end

    test "reset_state re-reads the env, drops subscribers, resets metrics" do
      :ok = ConfigServer.update([:dev, :debug_mode], true)
      :ok = ConfigServer.subscribe()
      assert ConfigServer.reset_state() == :ok
      assert ConfigServer.get([:ai, :planning, :default_strategy]) == {:ok, :fast}
      assert {:ok, %{updates_count: 0, subscribers_count: 0}} = ConfigServer.status()
      :ok = ConfigServer.update([:dev, :debug_mode], true)
      refute_receive {:config_notification, _}, 50
    end

    test "reset_state is forbidden outside test mode (checked in the caller)" do
      Application.put_env(:elixir_scope_foundation, :test_mode, false)
      on_exit(fn -> Application.put_env(:elixir_scope_foundation, :test_mode, true) end)

      assert {:error, %Error{} = e} = ConfigServer.reset_state()
      assert e.code == 5002
      assert e.error_type == :operation_forbidden
      assert e.message == "State reset only allowed in test mode"
      assert {e.severity, e.category, e.subcategory} == {:high, :security, :authorization}
    end
  end

  describe "subscriptions" do
    test "subscribe is idempotent; unsubscribe always :ok" do
      assert ConfigServer.subscribe() == :ok
      assert ConfigServer.subscribe() == :ok
      assert {:ok, %{subscribers_count: 1}} = ConfigServer.status()
      assert ConfigServer.unsubscribe() == :ok
      assert ConfigServer.unsubscribe() == :ok
      assert {:ok, %{subscribers_count: 0}} = ConfigServer.status()
      :ok = ConfigServer.update([:dev, :debug_mode], true)
      refute_receive {:config_notification, _}, 50
    end

    test "subscribe/unsubscribe another pid" do
      {:ok, other} = Agent.start(fn -> nil end)
      assert ConfigServer.subscribe(other) == :ok
      assert {:ok, %{subscribers_count: 1}} = ConfigServer.status()
      assert ConfigServer.unsubscribe(other) == :ok
      assert {:ok, %{subscribers_count: 0}} = ConfigServer.status()
      Agent.stop(other)
    end

    test "a dead subscriber is dropped and does not crash the server" do
      {:ok, server} = ServiceRegistry.lookup(:production, :config_server)
      {:ok, sub} = Agent.start(fn -> nil end)
      :ok = ConfigServer.subscribe(sub)
      Agent.stop(sub)
      :ok = ConfigServer.update([:dev, :debug_mode], true)
      assert {:ok, %{subscribers_count: 0}} = ConfigServer.status()
      assert ServiceRegistry.lookup(:production, :config_server) == {:ok, server}
    end

    test "concurrent short-lived subscribers leave the server responsive" do
      1..50
      |> Enum.map(fn i ->
        Task.async(fn ->
          :ok = ConfigServer.subscribe()
          if rem(i, 2) == 0, do: :ok = ConfigServer.unsubscribe()
        end)
      end)
      |> Enum.each(&Task.await/1)

      assert {:ok, %{status: :running}} = ConfigServer.status()
      assert ConfigServer.update([:dev, :debug_mode], true) == :ok
    end
  end

  describe "service functions" do
    test "status/0" do
      assert {:ok, status} = ConfigServer.status()
      assert status.status == :running
      assert is_integer(status.uptime_ms) and status.uptime_ms >= 0
      assert Map.has_key?(status, :last_update)
      assert is_integer(status.audit_failures)
    end

    test "available?/0, validate/1, updatable_paths/0" do
      assert ConfigServer.available?()
      assert ConfigServer.validate(Config.new()) == :ok

      assert {:error, %Error{error_type: :range_error}} =
               ConfigServer.validate(put_in(Config.new(), [:ai, :planning, :sampling_rate], 9))

      assert [:ai, :planning, :sampling_rate] in ConfigServer.updatable_paths()
      assert length(ConfigServer.updatable_paths()) == 9
    end

    test "not registered under its module name" do
      assert GenServer.whereis(ConfigServer) == nil
    end

    test "initialize/1 is :ok when running" do
      assert ConfigServer.initialize() == :ok
    end

    test "initialize/1 restarts a stopped instance under the supervisor, not linked" do
      sup = ElixirScope.Foundation.Supervisor
      :ok = Supervisor.terminate_child(sup, ConfigServer)
      refute ConfigServer.available?()
      assert {:error, %Error{code: 5000, error_type: :service_unavailable}} = ConfigServer.get()

      assert {:error, %Error{code: 5000, message: "Configuration service not started"}} =
               ConfigServer.update([:dev, :debug_mode], true)

      assert ConfigServer.initialize() == :ok
      {:ok, pid} = ServiceRegistry.lookup(:production, :config_server)

      assert {ConfigServer, ^pid, :worker, _} =
               List.keyfind(Supervisor.which_children(sup), ConfigServer, 0)

      {:links, links} = Process.info(self(), :links)
      refute pid in links
    end

    test "stop/0 stops the instance; the supervisor restarts it" do
      {:ok, old} = ServiceRegistry.lookup(:production, :config_server)
      ref = Process.monitor(old)
      assert ConfigServer.stop() == :ok
      assert_receive {:DOWN, ^ref, :process, ^old, _}
      assert {:ok, new} = ServiceRegistry.wait_for_service(:production, :config_server, 1_000)
      assert new != old
      assert ConfigServer.get([:ai, :provider]) == {:ok, :mock}
    end

    test "unknown messages are ignored" do
      {:ok, pid} = ServiceRegistry.lookup(:production, :config_server)
      send(pid, :garbage)
      assert {:ok, %{status: :running}} = ConfigServer.status()
    end
  end

  describe "isolated {:test, ref} instances" do
    test "pass health_check and are addressed with namespace:" do
      {ns, pid} = isolated()
      assert ServiceRegistry.health_check(ns, :config_server) == {:ok, pid}
      assert ConfigServer.available?(namespace: ns)
      assert ConfigServer.get([:namespace], namespace: ns) == {:ok, ns}

      assert ConfigServer.update([:dev, :debug_mode], true, namespace: ns) == :ok
      assert ConfigServer.get([:dev, :debug_mode], namespace: ns) == {:ok, true}
      assert ConfigServer.get([:dev, :debug_mode]) == {:ok, false}
      assert {:ok, %{updates_count: 1}} = ConfigServer.status(namespace: ns)
    end

    test "subscriptions per namespace" do
      {ns, _pid} = isolated()
      assert ConfigServer.subscribe(namespace: ns) == :ok
      :ok = ConfigServer.update([:dev, :debug_mode], true)
      refute_receive {:config_notification, _}, 50
      :ok = ConfigServer.update([:dev, :verbose_logging], true, namespace: ns)
      assert_receive {:config_notification, {:config_updated, [:dev, :verbose_logging], true}}
      assert ConfigServer.unsubscribe(namespace: ns) == :ok
      assert {:ok, %{subscribers_count: 0}} = ConfigServer.status(namespace: ns)
      assert ConfigServer.reset(namespace: ns) == :ok
      assert ConfigServer.reset_state(namespace: ns) == :ok
    end

    test "answer the server message protocol by pid" do
      {_ns, pid} = isolated()
      assert {:ok, %Config{}} = GenServer.call(pid, :get_config)
      assert GenServer.call(pid, {:get_config_path, [:ai, :provider]}) == {:ok, :mock}
      assert GenServer.call(pid, {:update_config, [:dev, :debug_mode], true}) == :ok
      assert {:error, %Error{}} = GenServer.call(pid, {:update_config, [:ai, :provider], :x})
      assert GenServer.call(pid, {:subscribe, self()}) == :ok
      assert GenServer.call(pid, :reset_config) == :ok
      assert_receive {:config_notification, {:config_reset, _}}
      assert GenServer.call(pid, {:unsubscribe, self()}) == :ok
      assert {:ok, %{status: :running}} = GenServer.call(pid, :get_status)
      assert GenServer.call(pid, :reset_state) == :ok
      assert ConfigServer.get([:dev, :debug_mode]) == {:ok, false}
    end

    test "a caller reaches the restarted instance after a kill, and none once it is gone" do
      {{:test, ref} = ns, pid} = isolated()
      assert ConfigServer.update([:dev, :debug_mode], true, namespace: ns) == :ok
      monitor = Process.monitor(pid)
      Process.exit(pid, :kill)
      assert_receive {:DOWN, ^monitor, :process, ^pid, :killed}
      assert {:ok, new} = ServiceRegistry.wait_for_service(ns, :config_server, 1_000)
      assert new != pid

      # The killed instance's update survives; the next one goes to the new
      # instance.
      assert ConfigServer.update([:dev, :verbose_logging], true, namespace: ns) == :ok
      assert ConfigServer.get([:dev, :debug_mode], namespace: ns) == {:ok, true}
      assert {:ok, %{updates_count: 1}} = ConfigServer.status(namespace: ns)

      :ok = TestSupervisor.cleanup_namespace(ref)

      assert {:error, %Error{error_type: :service_unavailable}} =
               ConfigServer.update([:dev, :debug_mode], false, namespace: ns)
    end

    test "an update whose server dies before replying exits as GenServer.call/2 does" do
      {ns, pid} = isolated()
      :ok = :sys.suspend(pid)
      me = self()

      caller =
        spawn(fn ->
          result =
            try do
              ConfigServer.update([:dev, :debug_mode], true, namespace: ns)
            catch
              :exit, reason -> {:exited, reason}
            end

          send(me, {:result, result})
        end)

      # The caller has waited long enough to watch the server.
      Process.sleep(50)
      assert Process.alive?(caller)
      Process.exit(pid, :kill)
      assert_receive {:result, {:exited, {:killed, {GenServer, :call, [^pid, _, _]}}}}, 1_000
    end

    test "a suspended server's update is answered once it resumes" do
      {ns, pid} = isolated()
      :ok = :sys.suspend(pid)
      task = Task.async(fn -> ConfigServer.update([:dev, :debug_mode], true, namespace: ns) end)
      refute Task.yield(task, 100)
      :ok = :sys.resume(pid)
      assert Task.await(task) == :ok
      assert ConfigServer.get([:dev, :debug_mode], namespace: ns) == {:ok, true}
    end

    test "the published config is erased when the instance stops" do
      {{:test, ref} = ns, _pid} = isolated()
      assert {:ok, _} = ConfigServer.get(namespace: ns)
      :ok = TestSupervisor.cleanup_namespace(ref)
      assert {:error, %Error{error_type: :service_unavailable}} = ConfigServer.get(namespace: ns)
    end

    test "initialize/1 starts one under the TestSupervisor" do
      ns = {:test, make_ref()}
      on_exit(fn -> TestSupervisor.cleanup_namespace(elem(ns, 1)) end)
      refute ConfigServer.available?(namespace: ns)
      assert ConfigServer.initialize(namespace: ns) == :ok
      assert {:ok, _pid} = ServiceRegistry.health_check(ns, :config_server)
      assert ConfigServer.stop(namespace: ns) == :ok
    end

    test "an invalid start config stops init with :config_validation_failed" do
      ref = make_ref()
      bad = %{debug_mode: :yes, verbose_logging: false, performance_monitoring: false}

      spec =
        Supervisor.child_spec({ConfigServer, [namespace: {:test, ref}, dev: bad]},
          restart: :temporary
        )

      assert {:error, {:config_validation_failed, %Error{}}} =
               DynamicSupervisor.start_child(TestSupervisor, spec)
    end
  end
end
