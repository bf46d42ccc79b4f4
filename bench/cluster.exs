# Cluster scope: queries across 3 nodes (this VM and 2 `:peer` nodes on
# 127.0.0.1), each holding EVENTS events (default 100 000), against the
# naive way of fetching every member's whole store and merging on the
# caller.
#
#   MIX_ENV=prod mix run bench/cluster.exs
#   EVENTS=20000 RUNS=5 mix run bench/cluster.exs
#
# Latency is the median of RUNS calls (default 10; the naive rows run
# max(RUNS / 3, 2) times). Bytes: what the members return, as
# `:erlang.external_size/1` of each answer, and as measured on the
# distribution sockets (`recv_oct` of each connection's port, which also
# counts the requests' replies' framing and the atom cache).
Code.require_file("support/harness.exs", __DIR__)

defmodule Bench.Cluster do
  alias Bench.Harness
  alias ElixirScope.Foundation.{Cluster, Events}
  alias ElixirScope.Foundation.Services.EventStore

  @types 10
  @traces 2000

  # Compiled here and loaded into the peers, so each node builds its own
  # events in its own clock.
  @filler (quote do
             defmodule Bench.ClusterFiller do
               def fill(n, types, traces) do
                 1..n
                 |> Stream.map(fn i ->
                   ElixirScope.Foundation.Events.debug_new_event(
                     :"bench_type_#{rem(i, types)}",
                     %{seq: i, payload: String.duplicate("x", 64), tags: [:a, :b]},
                     correlation_id: "trace-#{rem(i, traces)}"
                   )
                 end)
                 |> Stream.chunk_every(500)
                 |> Enum.each(fn chunk ->
                   {:ok, _} = ElixirScope.Foundation.Events.store_batch(chunk)
                 end)
               end
             end
           end)

  def run do
    events = env_int("EVENTS", 100_000)
    runs = env_int("RUNS", 10)
    epmd = System.find_executable("epmd") || Path.join(:code.root_dir(), "bin/epmd")
    {_, 0} = System.cmd(epmd, ["-daemon"])

    unless Node.alive?() do
      {:ok, _} =
        :net_kernel.start([
          :"bench_cluster_#{System.unique_integer([:positive])}@127.0.0.1",
          :longnames
        ])
    end

    peers = for i <- 1..2, do: start_peer(i)
    nodes = Enum.sort([node() | Enum.map(peers, &elem(&1, 1))])
    [{module, binary}] = Code.compile_quoted(@filler)

    {_, seconds} =
      Harness.time(fn ->
        nodes
        |> Enum.map(fn n ->
          Task.async(fn ->
            {:module, _} = :erpc.call(n, :code, :load_binary, [module, ~c"nofile", binary])
            :ok = :erpc.call(n, module, :fill, [events, @types, @traces], :infinity)
          end)
        end)
        |> Enum.each(&Task.await(&1, :infinity))
      end)

    IO.puts("filled #{length(nodes)} nodes x #{events} events in #{Float.round(seconds, 1)} s")
    wait_members(nodes)

    rows = [
      row(
        "correlation (cluster scope)",
        runs,
        nodes,
        fn ->
          {:ok, r} = Events.get_by_correlation("trace-7", scope: :cluster, timeout: 60_000)
          r
        end,
        fn -> answers(nodes, :member_correlation, ["trace-7"]) end
      ),
      row(
        "correlation (naive: whole stores)",
        naive_runs(runs),
        nodes,
        fn ->
          naive(nodes, &(&1.correlation_id == "trace-7"), & &1)
        end,
        fn -> whole_stores(nodes) end
      ),
      row(
        "type, timestamp, limit 100 (cluster scope)",
        runs,
        nodes,
        fn ->
          {:ok, r} = Events.query(limit_query(100), scope: :cluster, timeout: 60_000)
          r
        end,
        fn -> answers(nodes, :member_query, [{"bench_type_3", nil, :timestamp, 100}, 0]) end
      ),
      row(
        "type, timestamp, limit 100 (all matches shipped)",
        naive_runs(runs),
        nodes,
        fn ->
          {:ok, r} =
            Events.query(Map.delete(limit_query(100), :limit), scope: :cluster, timeout: 60_000)

          Enum.take(r, 100)
        end,
        fn -> answers(nodes, :member_query, [{"bench_type_3", nil, :timestamp, 0}, 0]) end
      ),
      row(
        "type, timestamp, limit 100 (naive: whole stores)",
        naive_runs(runs),
        nodes,
        fn ->
          naive(nodes, &(&1.event_type == :bench_type_3), &Enum.take(&1, 100))
        end,
        fn -> whole_stores(nodes) end
      )
    ]

    Harness.table(
      "Cluster queries, #{length(nodes)} nodes x #{events} events",
      ["query", "events out", "median ms", "answer bytes", "socket bytes in"],
      rows
    )

    Enum.each(peers, fn {peer, _} -> :peer.stop(peer) end)
  end

  defp limit_query(n), do: %{event_type: :bench_type_3, order_by: :timestamp, limit: n}

  defp row(name, runs, nodes, call, wire) do
    result = call.()
    before = socket_bytes(nodes)
    times = for _ <- 1..runs, do: elem(Harness.time(call), 1) * 1000
    per_call = div(socket_bytes(nodes) - before, runs)
    bytes = wire.() |> Enum.map(&:erlang.external_size/1) |> Enum.sum()
    [name, length(result), Harness.median(times), bytes, per_call]
  end

  # The naive way: every member ships its whole store; the caller filters,
  # orders by system time (node, id ties) and cuts.
  defp naive(nodes, keep?, cut) do
    nodes
    |> Enum.map(fn n -> {n, :erpc.send_request(n, EventStore, :query, [%{}])} end)
    |> Enum.flat_map(fn {n, req} ->
      {:ok, all} = :erpc.receive_response(req, :infinity)
      offset = :erpc.call(n, System, :time_offset, [:millisecond])
      for e <- all, keep?.(e), do: {{e.timestamp + offset, n, e.event_id}, e}
    end)
    |> Enum.sort()
    |> Enum.map(&elem(&1, 1))
    |> cut.()
  end

  defp answers(nodes, fun, args), do: Enum.map(nodes, &:erpc.call(&1, Cluster, fun, args))
  defp whole_stores(nodes), do: Enum.map(nodes, &:erpc.call(&1, EventStore, :query, [%{}]))

  # Bytes received on the distribution connections (the local node's own
  # answer never crosses a socket).
  defp socket_bytes(nodes) do
    for {n, port} <- :erlang.system_info(:dist_ctrl), n in nodes, is_port(port), reduce: 0 do
      acc ->
        case :inet.getstat(port, [:recv_oct]) do
          {:ok, [recv_oct: b]} -> acc + b
          _ -> acc
        end
    end
  end

  defp start_peer(i) do
    paths = Enum.flat_map(:code.get_path(), &[~c"-pa", &1])

    args = [
      ~c"-setcookie",
      Atom.to_charlist(Node.get_cookie()),
      ~c"-connect_all",
      ~c"false" | paths
    ]

    name = :"bench_peer_#{i}_#{System.unique_integer([:positive])}"

    {:ok, peer, node} =
      :peer.start(%{name: name, host: ~c"127.0.0.1", longnames: true, args: args})

    for app <- [:elixir_scope, :elixir_scope_foundation, :logger] do
      :ok = :erpc.call(node, Application, :put_all_env, [[{app, Application.get_all_env(app)}]])
    end

    {:ok, _} = :erpc.call(node, Application, :ensure_all_started, [:elixir_scope_foundation])
    {peer, node}
  end

  defp wait_members(nodes) do
    unless nodes -- Cluster.members(:event_store) == [] do
      Process.sleep(20)
      wait_members(nodes)
    end
  end

  defp naive_runs(runs), do: max(div(runs, 3), 2)

  defp env_int(name, default) do
    case System.get_env(name) do
      nil -> default
      value -> String.to_integer(value)
    end
  end
end

Bench.Cluster.run()
