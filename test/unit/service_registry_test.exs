defmodule ElixirScope.Foundation.ServiceRegistryTest do
  # async: false: defines a global fake :telemetry module and reads app env.
  use ExUnit.Case, async: false

  @compile {:no_warn_undefined, :telemetry}

  alias ElixirScope.Foundation.{ProcessRegistry, ServiceRegistry}
  alias ElixirScope.Foundation.Types.Error

  setup do
    ref = make_ref()
    on_exit(fn -> ServiceRegistry.cleanup_test_namespace(ref) end)
    {:ok, ns: {:test, ref}, ref: ref}
  end

  defp agent do
    {:ok, pid} = Agent.start(fn -> :state end)
    pid
  end

  describe "register/lookup" do
    test "register/3 then lookup/2", %{ns: ns} do
      pid = agent()
      assert ServiceRegistry.register(ns, :svc, pid) == :ok
      assert ServiceRegistry.lookup(ns, :svc) == {:ok, pid}
      assert ServiceRegistry.register(ns, :svc, agent()) == {:error, {:already_registered, pid}}
    end

    test "register/3 rejects non-pids", %{ns: ns} do
      assert_raise FunctionClauseError, fn -> ServiceRegistry.register(ns, :svc, "pid") end
    end

    test "lookup/2 error fields", %{ns: ns} do
      assert {:error, %Error{} = e} = ServiceRegistry.lookup(ns, :missing)
      assert e.code == 5001
      assert e.error_type == :service_not_found
      assert e.severity == :medium
      assert e.category == :system
      assert e.subcategory == :discovery
      assert e.message =~ "Service :missing not found"
      assert e.message =~ "namespace #{inspect(ns)}"
      assert e.context == %{namespace: ns, service: :missing}
    end

    test "unregister/2, list_services/1, via_tuple/2", %{ns: ns} do
      :ok = ServiceRegistry.register(ns, :a, agent())
      assert ServiceRegistry.list_services(ns) == [:a]
      assert ServiceRegistry.unregister(ns, :a) == :ok
      assert ServiceRegistry.list_services(ns) == []
      assert ServiceRegistry.via_tuple(ns, :a) == ProcessRegistry.via_tuple(ns, :a)
    end

    test "debug_registry logging is read at call time", %{ns: ns} do
      Application.put_env(:elixir_scope_foundation, :debug_registry, true)
      on_exit(fn -> Application.put_env(:elixir_scope_foundation, :debug_registry, false) end)
      assert ServiceRegistry.register(ns, :dbg, agent()) == :ok
      assert ServiceRegistry.unregister(ns, :dbg) == :ok
    end
  end

  describe "health_check/3" do
    setup %{ns: ns} do
      pid = agent()
      :ok = ServiceRegistry.register(ns, :svc, pid)
      {:ok, pid: pid}
    end

    test "without a function", %{ns: ns, pid: pid} do
      assert ServiceRegistry.health_check(ns, :svc) == {:ok, pid}
    end

    test "lookup error", %{ns: ns} do
      assert {:error, %Error{error_type: :service_not_found}} =
               ServiceRegistry.health_check(ns, :missing)
    end

    test "healthy results", %{ns: ns, pid: pid} do
      for value <- [:ok, true, {:ok, :fine}] do
        assert ServiceRegistry.health_check(ns, :svc, health_check: fn _ -> value end) ==
                 {:ok, pid}
      end
    end

    test "the function receives the service pid", %{ns: ns, pid: pid} do
      assert {:ok, ^pid} =
               ServiceRegistry.health_check(ns, :svc, health_check: fn p -> p == pid end)
    end

    test "unhealthy results", %{ns: ns} do
      assert ServiceRegistry.health_check(ns, :svc, health_check: fn _ -> false end) ==
               {:error, {:health_check_failed, false}}

      assert ServiceRegistry.health_check(ns, :svc, health_check: fn _ -> :degraded end) ==
               {:error, {:health_check_failed, :degraded}}
    end

    test "raise, exception, exit and throw", %{ns: ns} do
      assert {:error, {:health_check_error, %RuntimeError{message: "boom"}}} =
               ServiceRegistry.health_check(ns, :svc, health_check: fn _ -> raise "boom" end)

      assert {:error, {:health_check_crashed, %ArgumentError{}}} =
               ServiceRegistry.health_check(ns, :svc,
                 health_check: fn _ -> raise ArgumentError, "bad" end
               )

      assert ServiceRegistry.health_check(ns, :svc, health_check: fn _ -> exit(:gone) end) ==
               {:error, {:health_check_crashed, :gone}}

      assert ServiceRegistry.health_check(ns, :svc, health_check: fn _ -> throw(:ball) end) ==
               {:error, {:health_check_crashed, {:nocatch, :ball}}}
    end

    test "timeout kills the check, leaves no EXIT message, keeps trap_exit", %{ns: ns} do
      parent = self()
      flag = Process.flag(:trap_exit, false)

      check = fn _ ->
        send(parent, {:checker, self()})
        Process.sleep(:infinity)
      end

      assert ServiceRegistry.health_check(ns, :svc, health_check: check, timeout: 50) ==
               {:error, :health_check_timeout}

      assert_received {:checker, checker}
      refute Process.alive?(checker)
      assert Process.info(self(), :trap_exit) == {:trap_exit, false}
      refute_received {:EXIT, _, _}
      Process.flag(:trap_exit, flag)
    end

    test "a caller that traps exits gets no EXIT messages", %{ns: ns, pid: pid} do
      flag = Process.flag(:trap_exit, true)

      try do
        assert {:ok, ^pid} = ServiceRegistry.health_check(ns, :svc, health_check: fn _ -> :ok end)

        assert {:error, {:health_check_crashed, :kaput}} =
                 ServiceRegistry.health_check(ns, :svc, health_check: fn _ -> exit(:kaput) end)

        assert {:error, :health_check_timeout} =
                 ServiceRegistry.health_check(ns, :svc,
                   health_check: fn _ -> Process.sleep(:infinity) end,
                   timeout: 20
                 )

        refute_receive {:EXIT, _, _}, 50
      after
        Process.flag(:trap_exit, flag)
      end
    end

    test "crashing checks leave no EXIT message", %{ns: ns} do
      ServiceRegistry.health_check(ns, :svc, health_check: fn _ -> exit(:kaput) end)
      ServiceRegistry.health_check(ns, :svc, health_check: fn _ -> raise "x" end)
      refute_receive {:EXIT, _, _}, 20
    end

    test "dead process", %{ns: ns} do
      pid = agent()
      :ok = ServiceRegistry.register(ns, :dying, pid)
      # The registry drops dead pids itself, so a dead process is a lookup error.
      Agent.stop(pid)

      assert {:error, %Error{error_type: :service_not_found}} =
               ServiceRegistry.health_check(ns, :dying)
    end

    test "unknown options raise", %{ns: ns} do
      assert_raise ArgumentError, fn -> ServiceRegistry.health_check(ns, :svc, bogus: 1) end
    end
  end

  describe "wait_for_service/3" do
    test "returns at once for a registered service", %{ns: ns} do
      pid = agent()
      :ok = ServiceRegistry.register(ns, :svc, pid)
      assert ServiceRegistry.wait_for_service(ns, :svc, 100) == {:ok, pid}
    end

    test "is woken by register/3", %{ns: ns} do
      waiter = Task.async(fn -> ServiceRegistry.wait_for_service(ns, :late, 5_000) end)
      Process.sleep(30)
      pid = agent()
      :ok = ServiceRegistry.register(ns, :late, pid)
      assert Task.await(waiter) == {:ok, pid}
    end

    test "finds services registered through a via-tuple", %{ns: ns} do
      waiter = Task.async(fn -> ServiceRegistry.wait_for_service(ns, :via, 5_000) end)
      Process.sleep(30)
      {:ok, pid} = Agent.start(fn -> 0 end, name: ServiceRegistry.via_tuple(ns, :via))
      assert Task.await(waiter) == {:ok, pid}
      Agent.stop(pid)
    end

    test "times out and leaves nothing behind", %{ns: ns} do
      assert ServiceRegistry.wait_for_service(ns, :never, 50) == {:error, :timeout}
      # A late registration after the timeout sends nothing to the former waiter.
      :ok = ServiceRegistry.register(ns, :never, agent())
      refute_receive _, 20
    end

    test "sleeps in receive while waiting (no busy loop)", %{ns: ns} do
      waiter = Task.async(fn -> ServiceRegistry.wait_for_service(ns, :idle, 1_000) end)
      Process.sleep(400)
      {:reductions, r1} = Process.info(waiter.pid, :reductions)
      Process.sleep(200)
      {:reductions, r2} = Process.info(waiter.pid, :reductions)
      # 200 ms of 10 ms polling costs thousands of reductions; backoff at
      # 100 ms costs a few lookups.
      assert r2 - r1 < 2_000
      assert Task.await(waiter) == {:error, :timeout}
    end

    @tag timeout: 10_000
    test "default timeout is 5000 ms", %{ns: ns} do
      {micros, result} = :timer.tc(fn -> ServiceRegistry.wait_for_service(ns, :never) end)
      assert result == {:error, :timeout}
      assert micros >= 4_900_000 and micros <= 5_500_000
    end
  end

  describe "get_service_info/1 and cleanup_test_namespace/1" do
    test "info keys", %{ns: ns} do
      pid = agent()
      :ok = ServiceRegistry.register(ns, :svc, pid)
      info = ServiceRegistry.get_service_info(ns)
      assert info.namespace == ns
      assert info.total_services == 1
      assert info.healthy_services == 1
      assert %{pid: ^pid, alive: true, uptime_ms: uptime} = info.services.svc
      assert is_integer(uptime)
    end

    test "empty namespace", %{ns: ns} do
      assert ServiceRegistry.get_service_info(ns) ==
               %{namespace: ns, services: %{}, total_services: 0, healthy_services: 0}
    end

    test "cleanup stops registered processes", %{ns: ns, ref: ref} do
      pids =
        for i <- 1..3, do: agent() |> tap(&(:ok = ServiceRegistry.register(ns, :"s#{i}", &1)))

      assert ServiceRegistry.cleanup_test_namespace(ref) == :ok
      Enum.each(pids, &refute(Process.alive?(&1)))
      assert ServiceRegistry.get_service_info(ns).total_services == 0
      assert ServiceRegistry.cleanup_test_namespace(make_ref()) == :ok
    end
  end

  describe ":telemetry events" do
    setup do
      Code.compiler_options(ignore_module_conflict: true)

      Code.compile_string("""
      defmodule :telemetry do
        def attach(id, event, fun, config) do
          handlers = :persistent_term.get(:fake_telemetry_handlers, [])
          :persistent_term.put(:fake_telemetry_handlers, [{id, event, fun, config} | handlers])
          :ok
        end

        def detach(id) do
          handlers = :persistent_term.get(:fake_telemetry_handlers, [])
          :persistent_term.put(:fake_telemetry_handlers, Enum.reject(handlers, &(elem(&1, 0) == id)))
          :ok
        end

        # Deliberately does NOT protect the caller from raising handlers.
        def execute(event, measurements, metadata) do
          for {_id, ^event, fun, config} <- :persistent_term.get(:fake_telemetry_handlers, []),
              do: fun.(event, measurements, metadata, config)

          :ok
        end
      end
      """)

      on_exit(fn ->
        :persistent_term.erase(:fake_telemetry_handlers)
        :code.purge(:telemetry)
        :code.delete(:telemetry)
        :code.purge(:telemetry)
      end)

      :ok
    end

    defp attach(id, event) do
      parent = self()
      :telemetry.attach(id, event, fn e, m, md, _ -> send(parent, {:event, e, m, md}) end, nil)
    end

    test "register and lookup events", %{ns: ns} do
      attach("reg", [:elixir_scope, :foundation, :registry, :register])
      attach("look", [:elixir_scope, :foundation, :registry, :lookup])
      pid = agent()

      :ok = ServiceRegistry.register(ns, :svc, pid)

      assert_receive {:event, [:elixir_scope, :foundation, :registry, :register], %{count: 1},
                      %{namespace: ^ns, service: :svc, result: :ok}}

      {:error, _} = ServiceRegistry.register(ns, :svc, agent())

      assert_receive {:event, _, %{count: 1}, %{service: :svc, result: :error}}

      {:ok, ^pid} = ServiceRegistry.lookup(ns, :svc)

      assert_receive {:event, [:elixir_scope, :foundation, :registry, :lookup], %{duration: d},
                      %{namespace: ^ns, service: :svc, result: :ok}}

      assert is_integer(d) and d > 0

      {:error, _} = ServiceRegistry.lookup(ns, :nothing)
      assert_receive {:event, _, %{duration: _}, %{service: :nothing, result: :error}}
    end

    test "a raising handler does not break register or lookup", %{ns: ns} do
      :telemetry.attach(
        "boom",
        [:elixir_scope, :foundation, :registry, :register],
        fn _, _, _, _ ->
          raise "handler failure"
        end,
        nil
      )

      :telemetry.attach(
        "boom2",
        [:elixir_scope, :foundation, :registry, :lookup],
        fn _, _, _, _ ->
          raise "handler failure"
        end,
        nil
      )

      pid = agent()
      assert ServiceRegistry.register(ns, :svc, pid) == :ok
      assert ServiceRegistry.lookup(ns, :svc) == {:ok, pid}
    end
  end
end
