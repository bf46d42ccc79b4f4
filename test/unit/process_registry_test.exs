defmodule ElixirScope.Foundation.ProcessRegistryTest do
  use ExUnit.Case, async: true

  alias ElixirScope.Foundation.ProcessRegistry

  setup do
    ns = {:test, make_ref()}
    on_exit(fn -> ProcessRegistry.cleanup_test_namespace(elem(ns, 1)) end)
    {:ok, ns: ns}
  end

  defp agent do
    {:ok, pid} = Agent.start(fn -> :state end)
    pid
  end

  test "child_spec/1 is exactly the original's" do
    assert ProcessRegistry.child_spec([]) == %{
             id: Registry,
             start:
               {Registry, :start_link,
                [
                  [
                    keys: :unique,
                    name: ProcessRegistry,
                    partitions: System.schedulers_online()
                  ]
                ]},
             type: :supervisor,
             restart: :permanent,
             shutdown: :infinity
           }
  end

  test "via_tuple/2 shape", %{ns: ns} do
    assert ProcessRegistry.via_tuple(ns, :svc) == {:via, Registry, {ProcessRegistry, {ns, :svc}}}
  end

  test "register/3 and lookup/2 of any pid", %{ns: ns} do
    pid = agent()
    assert ProcessRegistry.register(ns, :svc, pid) == :ok
    assert ProcessRegistry.register(ns, :svc, pid) == :ok
    assert ProcessRegistry.lookup(ns, :svc) == {:ok, pid}
    assert ProcessRegistry.registered?(ns, :svc)
  end

  test "a second live pid is refused", %{ns: ns} do
    first = agent()
    second = agent()
    :ok = ProcessRegistry.register(ns, :svc, first)
    assert ProcessRegistry.register(ns, :svc, second) == {:error, {:already_registered, first}}
  end

  test "a dead holder is replaced and reported :error", %{ns: ns} do
    first = agent()
    :ok = ProcessRegistry.register(ns, :svc, first)
    Agent.stop(first)
    assert ProcessRegistry.lookup(ns, :svc) == :error
    refute ProcessRegistry.registered?(ns, :svc)
    second = agent()
    assert ProcessRegistry.register(ns, :svc, second) == :ok
    assert ProcessRegistry.lookup(ns, :svc) == {:ok, second}
  end

  test "register/3 rejects non-pids", %{ns: ns} do
    assert_raise FunctionClauseError, fn -> ProcessRegistry.register(ns, :svc, :not_a_pid) end
  end

  test "registrations survive the registering process", %{ns: ns} do
    pid = agent()
    task = Task.async(fn -> ProcessRegistry.register(ns, :svc, pid) end)
    assert Task.await(task) == :ok
    assert ProcessRegistry.lookup(ns, :svc) == {:ok, pid}
  end

  test "via-registered processes are found and dropped when they stop", %{ns: ns} do
    {:ok, pid} = Agent.start(fn -> 1 end, name: ProcessRegistry.via_tuple(ns, :via_svc))
    assert ProcessRegistry.lookup(ns, :via_svc) == {:ok, pid}
    assert ProcessRegistry.list_services(ns) == [:via_svc]
    Agent.stop(pid)
    assert ProcessRegistry.lookup(ns, :via_svc) == :error
  end

  test "unregister/2 removes backup rows and is always :ok", %{ns: ns} do
    :ok = ProcessRegistry.register(ns, :svc, agent())
    assert ProcessRegistry.unregister(ns, :svc) == :ok
    assert ProcessRegistry.lookup(ns, :svc) == :error
    assert ProcessRegistry.unregister(ns, :never) == :ok
  end

  test "list/get_all/count are isolated per namespace", %{ns: ns} do
    other = {:test, make_ref()}
    a = agent()
    b = agent()
    :ok = ProcessRegistry.register(ns, :a, a)
    :ok = ProcessRegistry.register(ns, :b, b)
    :ok = ProcessRegistry.register(other, :c, agent())

    assert Enum.sort(ProcessRegistry.list_services(ns)) == [:a, :b]
    assert ProcessRegistry.get_all_services(ns) == %{a: a, b: b}
    assert ProcessRegistry.count_services(ns) == 2
    assert ProcessRegistry.count_services(other) == 1
    ProcessRegistry.cleanup_test_namespace(elem(other, 1))
  end

  test "cleanup_test_namespace/1 stops backup-registered processes synchronously", %{ns: ns} do
    {:test, ref} = ns
    pids = for i <- 1..3, do: {i, agent()}
    Enum.each(pids, fn {i, pid} -> :ok = ProcessRegistry.register(ns, :"svc#{i}", pid) end)

    assert ProcessRegistry.cleanup_test_namespace(ref) == :ok
    Enum.each(pids, fn {_i, pid} -> refute Process.alive?(pid) end)
    assert ProcessRegistry.count_services(ns) == 0
  end

  test "cleanup_test_namespace/1 kills processes that ignore :shutdown", %{ns: ns} do
    {:test, ref} = ns

    pid =
      spawn(fn ->
        Process.flag(:trap_exit, true)
        Process.sleep(:infinity)
      end)

    :ok = ProcessRegistry.register(ns, :stubborn, pid)
    assert ProcessRegistry.cleanup_test_namespace(ref) == :ok
    refute Process.alive?(pid)
  end

  test "cleanup_test_namespace/1 on an empty namespace is :ok" do
    assert ProcessRegistry.cleanup_test_namespace(make_ref()) == :ok
  end

  test "stats/0 keys and types", %{ns: ns} do
    :ok = ProcessRegistry.register(ns, :svc, agent())
    stats = ProcessRegistry.stats()

    for key <- [:total_services, :production_services, :test_namespaces, :memory_usage_bytes] do
      assert is_integer(stats[key]) and stats[key] >= 0
    end

    assert stats.total_services >= 1
    assert stats.test_namespaces >= 1
    assert stats.partitions == System.schedulers_online()
    assert stats.partition_count == System.schedulers_online()

    assert %{backup_table_exists: true, table_size: size, memory_words: words} =
             stats.ets_table_info

    assert is_integer(size) and is_integer(words)
  end

  test "stats/0 raises for a namespace that is neither :production nor {:test, _}" do
    :ok = ProcessRegistry.register(:bogus_namespace, :svc, agent())

    try do
      assert_raise ArgumentError, fn -> ProcessRegistry.stats() end
    after
      ProcessRegistry.unregister(:bogus_namespace, :svc)
    end
  end

  test "notify_registered/3 is :ok with or without waiters", %{ns: ns} do
    assert ProcessRegistry.notify_registered(ns, :svc) == :ok
    assert ProcessRegistry.notify_registered(ns, :svc, agent()) == :ok
  end

  describe "namespaces" do
    alias ElixirScope.Foundation.Services.{ConfigServer, EventStore, TelemetryService}
    alias ElixirScope.Foundation.Types.Error

    test "namespace?/1: :production and {:test, reference} only" do
      assert ProcessRegistry.namespace?(:production)
      assert ProcessRegistry.namespace?({:test, make_ref()})

      for bad <- [
            nil,
            :test,
            {:test, :x},
            {:test, "ref"},
            make_ref(),
            self(),
            "ns",
            {:production}
          ],
          do: refute(ProcessRegistry.namespace?(bad))
    end

    test "no service starts, registers or publishes state under an invalid namespace" do
      before = length(:persistent_term.get())

      for bad <- [{:test, :not_a_ref}, make_ref(), "ns", 42],
          module <- [ConfigServer, EventStore, TelemetryService] do
        assert module.start_link(namespace: bad) == {:error, {:invalid_namespace, bad}}
        # The reason is in the message or the context, per service.
        assert {:error, %Error{} = error} = module.initialize(namespace: bad)
        assert inspect(error) =~ "invalid_namespace"
      end

      assert Registry.select(ProcessRegistry, [{{{:"$1", :_}, :_, :_}, [], [:"$1"]}])
             |> Enum.all?(&ProcessRegistry.namespace?/1)

      assert length(:persistent_term.get()) == before
    end
  end
end
