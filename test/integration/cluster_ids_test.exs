defmodule ElixirScope.Foundation.ClusterIdsTest do
  # Utils.generate_id/0 across processes, nodes and VM restarts, on real
  # `:peer` nodes (127.0.0.1).
  use ExUnit.Case, async: false

  @moduletag :cluster

  import Bitwise

  alias ElixirScope.Foundation.TestSupport.ClusterPeers
  alias ElixirScope.Foundation.Utils

  setup_all do
    started = ClusterPeers.ensure_distributed()
    on_exit(fn -> if started, do: :net_kernel.stop() end)
    :ok
  end

  # The documented layout: 41 bits of milliseconds, 10 of sequence, 12 of
  # node bits.
  defp millis(id), do: id >>> 22
  defp node_bits(id), do: id &&& 0xFFF

  defp valid?(id), do: is_integer(id) and id > 0 and id < 1 <<< 63

  test "many processes on two peers and this VM: no collision, each process increasing" do
    peers = for i <- 1..2, do: ClusterPeers.start(ClusterPeers.unique_name(:"ids_#{i}"))
    on_exit(fn -> Enum.each(peers, fn {peer, _} -> ClusterPeers.stop(peer) end) end)

    # 16 x 10 000 per VM: well above 1024 ids per millisecond, so the
    # counters run ahead of the clock.
    per_vm =
      [ClusterPeers.generate_ids(16, 10_000)] ++
        Enum.map(peers, fn {_, node} ->
          :erpc.call(node, ClusterPeers, :generate_ids, [16, 10_000], 60_000)
        end)

    all = per_vm |> List.flatten()
    assert length(all) == 3 * 160_000
    assert Enum.all?(all, &valid?/1)
    assert all |> Enum.uniq() |> length() == length(all)

    for lists <- per_vm, list <- lists do
      assert list == Enum.sort(list)
    end

    # one generator per VM: one set of node bits each
    assert Enum.map(per_vm, fn lists ->
             lists |> List.flatten() |> Enum.map(&node_bits/1) |> Enum.uniq() |> length()
           end) ==
             [1, 1, 1]
  end

  test "a VM started again under the same name never repeats an id of the earlier one" do
    name = ClusterPeers.unique_name(:ids_restart)

    {peer, node} = ClusterPeers.start(name)
    first = node |> :erpc.call(ClusterPeers, :generate_ids, [8, 10_000], 60_000) |> List.flatten()
    ClusterPeers.stop(peer)

    {peer, ^node} = ClusterPeers.start(name)
    on_exit(fn -> ClusterPeers.stop(peer) end)

    second =
      node |> :erpc.call(ClusterPeers, :generate_ids, [8, 10_000], 60_000) |> List.flatten()

    assert MapSet.disjoint?(MapSet.new(first), MapSet.new(second))
    assert Enum.all?(first ++ second, &valid?/1)
    # the new VM counts from its own start, past the earlier one's ids
    assert second |> Enum.map(&millis/1) |> Enum.min() >
             first |> Enum.map(&millis/1) |> Enum.max()
  end

  test "ids carry the current time in milliseconds since 2024-01-01" do
    before = System.system_time(:millisecond) - 1_704_067_200_000
    id = Utils.generate_id()
    assert millis(id) >= before
  end
end
