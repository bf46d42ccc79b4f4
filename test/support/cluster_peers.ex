defmodule ElixirScope.Foundation.TestSupport.ClusterPeers do
  @moduledoc false
  # Real nodes for the cluster tests: `:peer` nodes on 127.0.0.1 with this
  # project's code paths, the test VM's app env and the application
  # started. Node names are unique per run, as other test runs may share
  # the machine. The functions below `start/1` run on the peers (this
  # module is compiled into the test build, so peers load it from -pa).

  alias ElixirScope.Foundation.{Config, Utils}
  alias ElixirScope.Foundation.TestSupport.Eventually

  @doc """
  Starts epmd and makes this VM distributed unless it is; returns whether
  it started distribution (then the caller stops it when done).
  """
  def ensure_distributed do
    epmd = System.find_executable("epmd") || Path.join(:code.root_dir(), "bin/epmd")
    {_, 0} = System.cmd(epmd, ["-daemon"])

    if Node.alive?() do
      false
    else
      name = :"cluster_test_#{System.unique_integer([:positive])}@127.0.0.1"
      {:ok, _} = :net_kernel.start([name, :longnames])
      true
    end
  end

  @doc "A unique short name for a peer."
  def unique_name(prefix), do: :"#{prefix}_#{System.unique_integer([:positive])}_#{rand()}"

  @doc """
  Starts a peer named `name` (an atom, no host), with the application
  running; returns `{peer_pid, node}`. Not linked: a peer that dies does
  not take the test with it.
  """
  def start(name) do
    paths = Enum.flat_map(:code.get_path(), &[~c"-pa", &1])
    cookie = Atom.to_charlist(Node.get_cookie())
    args = [~c"-setcookie", cookie, ~c"-connect_all", ~c"false" | paths]

    {:ok, peer, node} =
      :peer.start(%{name: name, host: ~c"127.0.0.1", longnames: true, args: args})

    for app <- [:elixir_scope, :elixir_scope_foundation, :logger] do
      env = Application.get_all_env(app)
      :ok = :erpc.call(node, Application, :put_all_env, [[{app, env}]])
    end

    {:ok, _} = :erpc.call(node, Application, :ensure_all_started, [:elixir_scope_foundation])
    {peer, node}
  end

  @doc "Stops a peer; `:ok` also when it is already gone."
  def stop(peer) do
    :peer.stop(peer)
  catch
    _, _ -> :ok
  end

  @doc "The OS pid of `node`, as a string."
  def os_pid(node), do: node |> :rpc.call(:os, :getpid, []) |> List.to_string()

  @doc """
  Sends `signal` (\"STOP\", \"CONT\", \"KILL\") to an OS pid. After
  \"STOP\" it waits until every thread of the process is stopped: on a
  busy machine a thread may run on for a few ms after `kill` returns, until
  the thread that takes the signal is scheduled.
  """
  def signal(os_pid, signal) do
    {_, _} = System.cmd("kill", ["-#{signal}", os_pid], stderr_to_stdout: true)

    if signal == "STOP",
      do: true = Eventually.eventually(fn -> all_threads_stopped?(os_pid) end, 5_000)

    :ok
  end

  # The state field of /proc/<pid>/task/<tid>/stat follows the ")" that
  # closes the command name; "T" is stopped by a signal.
  defp all_threads_stopped?(os_pid) do
    case File.ls("/proc/#{os_pid}/task") do
      {:ok, tids} ->
        Enum.all?(tids, fn tid ->
          case File.read("/proc/#{os_pid}/task/#{tid}/stat") do
            {:ok, stat} ->
              stat
              |> String.split(")")
              |> List.last()
              |> String.trim_leading()
              |> String.starts_with?("T")

            {:error, _} ->
              true
          end
        end)

      {:error, _} ->
        false
    end
  end

  ## Run on peers

  @doc "Subscribes to config notifications and forwards the first one to `parent`."
  def forward_config_notification(parent) do
    :ok = Config.subscribe()
    send(parent, {:subscribed, node()})

    receive do
      {:config_notification, message} -> send(parent, {:notified, node(), message})
    end
  end

  @doc "`procs` processes each make `per_proc` ids; the ids in generation order per process."
  def generate_ids(procs, per_proc) do
    1..procs
    |> Enum.map(fn _ -> Task.async(fn -> for _ <- 1..per_proc, do: Utils.generate_id() end) end)
    |> Enum.map(&Task.await(&1, 60_000))
  end

  defp rand, do: :rand.uniform(1_000_000)
end
