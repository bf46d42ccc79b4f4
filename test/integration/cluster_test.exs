defmodule ElixirScope.Foundation.ClusterTest do
  # Real nodes: this VM (made distributed if it is not) and `:peer` nodes on
  # 127.0.0.1 running the application. Two peers live for the whole module;
  # tests that kill, suspend or add a node start their own.
  use ExUnit.Case, async: false

  @moduletag :cluster

  alias ElixirScope.Foundation.{Cluster, Config, Events, Telemetry}
  alias ElixirScope.Foundation.TestSupport.{ClusterPeers, Eventually}
  alias ElixirScope.Foundation.Types

  @path [:ai, :planning, :sampling_rate]

  setup_all do
    started = ClusterPeers.ensure_distributed()
    peers = for i <- 1..2, do: ClusterPeers.start(ClusterPeers.unique_name(:"cluster_#{i}"))
    nodes = Enum.map(peers, &elem(&1, 1))

    on_exit(fn ->
      Enum.each(peers, fn {peer, _} -> ClusterPeers.stop(peer) end)
      if started, do: :net_kernel.stop()
    end)

    all = Enum.sort([node() | nodes])
    assert Eventually.eventually(fn -> all -- Cluster.members(:event_store) == [] end)
    %{peers: nodes, nodes: all}
  end

  # Stores, round by round, one event per node (made on that node, so in
  # its own monotonic clock), a few ms apart: creation order is system-time
  # order. Returns the events in creation order.
  defp store_rounds(nodes, rounds, type, cid) do
    for round <- 1..rounds, node <- nodes do
      {:ok, event} =
        :erpc.call(node, Events, :new_event, [type, %{round: round}, [correlation_id: cid]])

      {:ok, _} = :erpc.call(node, Events, :store, [event])
      Process.sleep(5)
      event
    end
  end

  defp unique_type, do: :"cluster_type_#{System.unique_integer([:positive])}"

  describe "queries" do
    test "correlation results from 3 nodes merge in system-time order, unchanged", ctx do
      cid = "cid-#{System.unique_integer()}"
      created = store_rounds(ctx.nodes, 4, unique_type(), cid)

      assert {:ok, events} = Events.get_by_correlation(cid, scope: :cluster, timeout: 5_000)
      assert events == created
      assert events |> Enum.map(& &1.node) |> Enum.uniq() |> Enum.sort() == ctx.nodes
    end

    test "ordered queries apply offset and limit after the merge", ctx do
      type = unique_type()
      created = store_rounds(ctx.nodes, 5, type, "q")
      q = %{event_type: type}
      opts = [scope: :cluster, timeout: 5_000]

      assert {:ok, page} =
               Events.query(Map.merge(q, %{order_by: :timestamp, offset: 4, limit: 6}), opts)

      assert page == Enum.slice(created, 4, 6)

      assert {:ok, newest} =
               Events.query(Map.merge(q, %{order_by: :timestamp_desc, limit: 4}), opts)

      assert newest == created |> Enum.reverse() |> Enum.take(4)

      by_id = Enum.sort_by(created, &{&1.event_id, &1.node})

      assert {:ok, page} =
               Events.query(Map.merge(q, %{order_by: :event_id, offset: 2, limit: 5}), opts)

      assert page == Enum.slice(by_id, 2, 5)

      # no order_by: node name, then event_id
      by_node = Enum.sort_by(created, &{&1.node, &1.event_id})
      assert {:ok, page} = Events.query(Map.merge(q, %{offset: 3, limit: 7}), opts)
      assert page == Enum.slice(by_node, 3, 7)
      assert {:ok, all} = Events.query(q, opts)
      assert all == by_node
    end

    test "a time_range in the caller's clock selects the same events on every node", ctx do
      type = unique_type()
      before = store_rounds(ctx.nodes, 2, type, "t")
      from = System.monotonic_time(:millisecond)
      Process.sleep(5)
      inside = store_rounds(ctx.nodes, 2, type, "t")
      to = System.monotonic_time(:millisecond)
      Process.sleep(5)
      _after = store_rounds(ctx.nodes, 1, type, "t")

      query = %{event_type: type, time_range: {from, to}, order_by: :timestamp}
      assert {:ok, events} = Events.query(query, scope: :cluster, timeout: 5_000)
      assert events == inside
      assert length(before) == 6
    end

    test "a member returns at most offset + limit events", ctx do
      [peer | _] = ctx.peers
      type = unique_type()
      store_rounds([peer], 30, type, "w")
      wire = {Atom.to_string(type), nil, :timestamp, 2 + 3}

      assert {:ok, pairs} = :erpc.call(peer, Cluster, :member_query, [wire, 0])
      assert length(pairs) == 5
    end

    test "a type no node knows as an atom matches nothing and creates no atom there", ctx do
      [peer | _] = ctx.peers
      name = "never_an_atom_#{System.unique_integer([:positive])}"
      wire = {name, nil, :unordered, 0}

      assert {:ok, []} = :erpc.call(peer, Cluster, :member_query, [wire, 0])

      assert {:exception, :badarg, _} =
               catch_error(:erpc.call(peer, :erlang, :binary_to_existing_atom, [name, :utf8]))
    end
  end

  describe "config" do
    setup do
      {:ok, original} = Config.get(@path)
      on_exit(fn -> Config.update(@path, original, scope: :cluster, timeout: 1_000) end)
      :ok
    end

    test "an update is applied, notified and audited on every node", ctx do
      audits = fn node ->
        {:ok, events} = :erpc.call(node, Events, :query, [%{event_type: :config_updated}])
        Enum.count(events, &(&1.data.path == @path and &1.data.new_value == 0.125))
      end

      for node <- ctx.nodes do
        Node.spawn(node, ClusterPeers, :forward_config_notification, [self()])
        assert_receive {:subscribed, ^node}, 5_000
      end

      before = Map.new(ctx.nodes, &{&1, audits.(&1)})
      assert :ok = Config.update(@path, 0.125, scope: :cluster, timeout: 5_000)

      for node <- ctx.nodes do
        assert {:ok, 0.125} = :erpc.call(node, Config, :get, [@path])
        assert_receive {:notified, ^node, {:config_updated, @path, 0.125}}, 5_000
        assert Eventually.eventually(fn -> audits.(node) == before[node] + 1 end)
      end
    end

    test "an invalid update changes no node", ctx do
      values = fn -> Enum.map(ctx.nodes, &:erpc.call(&1, Config, :get, [@path])) end
      was = values.()

      assert {:error, %Types.Error{error_type: :range_error}} =
               Config.update(@path, 7.5, scope: :cluster, timeout: 5_000)

      assert {:error, %Types.Error{}} =
               Config.update([:not, :a, :path], 1, scope: :cluster, timeout: 5_000)

      assert {:error, %Types.Error{error_type: :invalid_input}} =
               Config.update("a.b", 1, scope: :cluster)

      assert values.() == was
    end
  end

  test "metrics come back per node, each node's own", ctx do
    [peer | _] = ctx.peers
    name = :"cluster_metric_#{System.unique_integer([:positive])}"
    :ok = :erpc.call(peer, Telemetry, :emit_counter, [[:cluster_test, name], %{}])

    assert Eventually.eventually(fn ->
             {:ok, by_node} = Telemetry.get_metrics(scope: :cluster, timeout: 5_000)
             get_in(by_node, [peer, :cluster_test, name, :count]) == 1
           end)

    {:ok, by_node} = Telemetry.get_metrics(scope: :cluster, timeout: 5_000)
    assert ctx.nodes -- Map.keys(by_node) == []
    assert Enum.all?(Map.keys(by_node), &(&1 in [node() | Node.list()]))
    assert Enum.all?(by_node, fn {_node, metrics} -> is_map_key(metrics, :retrieved_at) end)

    for node <- ctx.nodes, node != peer do
      assert get_in(by_node, [node, :cluster_test, name]) == nil
    end
  end

  describe "failures" do
    setup do
      {peer, node} = ClusterPeers.start(ClusterPeers.unique_name(:cluster_extra))
      os_pid = ClusterPeers.os_pid(node)

      on_exit(fn ->
        ClusterPeers.signal(os_pid, "CONT")
        ClusterPeers.stop(peer)
      end)

      assert Eventually.eventually(fn -> node in Cluster.members(:event_store) end)
      %{extra: node, os_pid: os_pid}
    end

    test "a hung member is reported as :timeout by the deadline", ctx do
      type = unique_type()
      created = store_rounds(ctx.nodes ++ [ctx.extra], 2, type, "h")
      ClusterPeers.signal(ctx.os_pid, "STOP")

      query = %{event_type: type, order_by: :timestamp}
      assert {:partial, events, failed} = Events.query(query, scope: :cluster, timeout: 300)
      assert failed == [{ctx.extra, :timeout}]
      assert events == Enum.reject(created, &(&1.node == ctx.extra))

      assert {:partial, by_node, [{_, :timeout}]} =
               Telemetry.get_metrics(scope: :cluster, timeout: 300)

      refute is_map_key(by_node, ctx.extra)

      {:ok, original} = Config.get(@path)
      on_exit(fn -> Config.update(@path, original, scope: :cluster, timeout: 1_000) end)

      assert {:partial, [{extra, :timeout}]} =
               Config.update(@path, 0.5, scope: :cluster, timeout: 300)

      # no rollback: the members that answered keep the new value
      assert extra == ctx.extra
      for node <- ctx.nodes, do: assert({:ok, 0.5} = :erpc.call(node, Config, :get, [@path]))

      ClusterPeers.signal(ctx.os_pid, "CONT")
      assert :ok = Config.update(@path, original, scope: :cluster, timeout: 5_000)
    end

    test "a member killed during a call is :noconnection, then leaves the cluster", ctx do
      type = unique_type()
      created = store_rounds(ctx.nodes ++ [ctx.extra], 2, type, "k")
      ClusterPeers.signal(ctx.os_pid, "STOP")
      query = %{event_type: type, order_by: :timestamp}
      task = Task.async(fn -> Events.query(query, scope: :cluster, timeout: 30_000) end)
      Process.sleep(200)
      ClusterPeers.signal(ctx.os_pid, "KILL")

      survivors = Enum.reject(created, &(&1.node == ctx.extra))
      assert {:partial, ^survivors, [{extra, :noconnection}]} = Task.await(task, 30_000)
      assert extra == ctx.extra

      assert Eventually.eventually(fn -> ctx.extra not in Cluster.members(:event_store) end)
      assert {:ok, ^survivors} = Events.query(query, scope: :cluster, timeout: 5_000)
    end
  end

  test "a node that joins later is picked up", ctx do
    type = unique_type()
    {peer, late} = ClusterPeers.start(ClusterPeers.unique_name(:cluster_late))
    on_exit(fn -> ClusterPeers.stop(peer) end)

    created = store_rounds(ctx.nodes ++ [late], 1, type, "j")

    assert Eventually.eventually(fn ->
             Events.query(%{event_type: type, order_by: :timestamp}, scope: :cluster) ==
               {:ok, created}
           end)

    assert {:ok, by_node} = Telemetry.get_metrics(scope: :cluster, timeout: 5_000)
    assert is_map_key(by_node, late)
  end

  test "scope: :cluster with a test namespace or bad options is an error" do
    ns = {:test, make_ref()}

    for result <- [
          Events.query(%{}, scope: :cluster, namespace: ns),
          Events.get_by_correlation("x", scope: :cluster, namespace: ns),
          Config.update(@path, 0.5, scope: :cluster, namespace: ns),
          Telemetry.get_metrics(scope: :cluster, namespace: ns),
          Events.query(%{}, scope: :everywhere),
          Events.query(%{}, scope: :cluster, timeout: -1),
          Events.get_by_correlation(:not_a_string, scope: :cluster)
        ] do
      assert {:error, %Types.Error{error_type: :invalid_input, message: message}} = result
      assert is_binary(message)
    end
  end
end
