defmodule ElixirScope.Foundation.ClusterScopeTest do
  # scope: :cluster on a VM that is not distributed: the local node alone.
  # (test/integration/cluster_test.exs covers real clusters.)
  use ExUnit.Case, async: false

  alias ElixirScope.Foundation.{Config, Events, Telemetry}

  setup do
    if Node.alive?(), do: {:skip, :distributed}, else: :ok
  end

  test "queries, correlation and metrics answer for the local node" do
    type = :"local_cluster_#{System.unique_integer([:positive])}"
    cid = "local-cluster-#{System.unique_integer()}"

    stored =
      for i <- 1..3 do
        {:ok, event} = Events.new_event(type, %{i: i}, correlation_id: cid)
        {:ok, _} = Events.store(event)
        Process.sleep(2)
        event
      end

    assert {:ok, ^stored} =
             Events.query(%{event_type: type, order_by: :timestamp}, scope: :cluster)

    assert {:ok, [_, _]} = Events.query(%{event_type: type, offset: 1}, scope: :cluster)
    assert {:ok, ^stored} = Events.get_by_correlation(cid, scope: :cluster, timeout: 1_000)
    assert {:ok, %{nonode@nohost: %{}} = by_node} = Telemetry.get_metrics(scope: :cluster)
    assert map_size(by_node) == 1
  end

  test "scope: :local and no scope behave alike" do
    assert Telemetry.get_metrics(scope: :local) |> elem(0) == :ok
    assert Events.query(%{limit: 1}, scope: :local) == Events.query(%{limit: 1})

    {:ok, rate} = Config.get([:ai, :planning, :sampling_rate])
    assert :ok = Config.update([:ai, :planning, :sampling_rate], rate, scope: :local)
    assert :ok = Config.update([:ai, :planning, :sampling_rate], rate, scope: :cluster)
  end

  test "a malformed query fails before any node is asked" do
    assert {:error, %{error_type: :invalid_input}} =
             Events.query(%{time_range: :yesterday}, scope: :cluster)

    assert {:ok, []} = Events.query(%{event_type: "not an atom"}, scope: :cluster)
  end
end
