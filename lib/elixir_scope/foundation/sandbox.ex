defmodule ElixirScope.Foundation.Sandbox do
  @moduledoc """
  An isolated foundation per test process: the namespace of every facade and
  service call, and the ownership of `{:test, ref}` namespaces.

  `checkout/1` starts a fresh ConfigServer (built from the application env),
  EventStore and TelemetryService in a new `{:test, ref}` namespace, under a
  supervisor linked to the calling process (the **owner**), and binds the
  namespace to the owner. From then on, plain facade calls
  (`Config.update/2`, `Events.store/1`, `Telemetry.emit_counter/2`, ...)
  made by the owner, by processes it started with `Task` (found through
  `$callers`) and by processes it allowed (`allow/2`) go to that namespace;
  so do the audit events, counters and config notifications they cause.

  The sandbox ends when the owner calls `checkin/0` (synchronously) or exits
  (the linked supervisor then stops its services): the services stop, the
  event store's worker thread is joined, the native handles, registry
  entries and ownership rows are removed.

  ## Namespace resolution

  `namespace/1` is the one function every facade and service entry point
  uses to pick the namespace of a call:

    1. an explicit `namespace:` option;
    2. the sandbox of the calling process: as owner, as an allowed process,
       or through the first process of its `$callers` that has one;
    3. the shared sandbox, when an owner checked out with `shared: true`;
    4. `:production`.

  Before the first checkout in the VM, a call pays one `:persistent_term`
  read (a flag set once per VM, never erased). After it, the owner pays one
  process-dictionary read more; other processes two (their own entry and
  `$callers`), one ETS lookup for themselves, one per `$callers` entry up
  to the first that has a sandbox, and one for the shared sandbox when none
  matched. Checkout and checkin never write or erase `:persistent_term`.

  ## Shared mode

  For tests that cannot be async (processes started elsewhere, named
  processes): `checkout(shared: true)` additionally makes the sandbox the
  one used by every process that belongs to no sandbox, until its owner
  checks in or exits (the last shared checkout wins).
  """

  alias ElixirScope.Foundation.{ProcessRegistry, Types}
  alias ElixirScope.Foundation.Services.{ConfigServer, EventStore, TelemetryService}

  @table :elixir_scope_foundation_sandbox
  # Set once per VM at the first checkout, never erased.
  @active :elixir_scope_foundation_sandbox_active
  # The owner's namespace and supervisor, in its process dictionary.
  @owned :"$elixir_scope_foundation_sandbox"
  @supervisor :"$elixir_scope_foundation_sandbox_sup"

  @typedoc "A namespace: `:production` or `{:test, reference()}`."
  @type namespace :: ProcessRegistry.namespace()

  @doc false
  # The ownership table (created by ProcessRegistry.Owner): rows
  # `{pid, namespace, owner_pid}` for owners and allowed processes, and
  # `{:shared, namespace, owner_pid}` for the shared sandbox.
  def table, do: @table

  @doc """
  The namespace of a call with options `opts`: `opts[:namespace]` when
  given, else the sandbox of the calling process (see the moduledoc), else
  `:production`.

      iex> ElixirScope.Foundation.Sandbox.namespace(namespace: :production)
      :production
  """
  @spec namespace(keyword()) :: namespace() | term()
  def namespace([]), do: current()

  def namespace(opts) when is_list(opts) do
    case List.keyfind(opts, :namespace, 0) do
      {:namespace, namespace} -> namespace
      nil -> current()
    end
  end

  @doc """
  The sandbox namespace of the calling process, or `:production` when it
  belongs to none.
  """
  @spec current() :: namespace()
  def current do
    if :persistent_term.get(@active, false), do: resolve(), else: :production
  end

  defp resolve do
    case Process.get(@owned) do
      nil -> lookup([self() | Process.get(:"$callers", [])])
      namespace -> namespace
    end
  end

  defp lookup([pid | rest]) do
    case :ets.lookup(@table, pid) do
      [{_pid, namespace, _owner}] -> namespace
      [] -> lookup(rest)
    end
  rescue
    ArgumentError -> :production
  end

  defp lookup([]) do
    case :ets.lookup(@table, :shared) do
      [{:shared, namespace, _owner}] -> namespace
      [] -> :production
    end
  rescue
    ArgumentError -> :production
  end

  @doc """
  Gives the calling process a fresh isolated foundation and returns its
  namespace; a second checkout by the same process returns the same
  namespace. Starts the `:elixir_scope_foundation` application if needed;
  no `test_mode` is required.

  Options:

    * `:shared` - `true` also makes this sandbox the one of every process
      that belongs to no sandbox (for non-async tests); default `false`.

  Raises `ArgumentError` for unknown options and `RuntimeError` when the
  services cannot start.
  """
  @spec checkout(keyword()) :: namespace()
  def checkout(opts \\ []) do
    opts = Keyword.validate!(opts, shared: false)

    namespace =
      case {Process.get(@owned), Process.get(@supervisor)} do
        {{:test, _} = namespace, sup} when is_pid(sup) ->
          if Process.alive?(sup), do: namespace, else: start()

        _ ->
          start()
      end

    if opts[:shared], do: :ets.insert(@table, {:shared, namespace, self()})
    namespace
  end

  defp start do
    ensure_started()
    if not :persistent_term.get(@active, false), do: :persistent_term.put(@active, true)
    namespace = {:test, make_ref()}
    owner = self()

    children = [
      %{
        id: :guard,
        start: {__MODULE__, :start_guard, [namespace, owner]},
        shutdown: 5_000
      },
      {ConfigServer, [namespace: namespace]},
      # A 1 000-event audit queue (production: 10 000): the queue is
      # preallocated, and its size is most of a checkout's cost.
      {EventStore, [namespace: namespace, async_queue_size: 1_000]},
      {TelemetryService, [namespace: namespace]}
    ]

    case Supervisor.start_link(children, strategy: :one_for_one, max_restarts: 10) do
      {:ok, sup} ->
        Process.put(@owned, namespace)
        Process.put(@supervisor, sup)
        namespace

      {:error, reason} ->
        raise "ElixirScope.Foundation.Sandbox could not start the services: #{inspect(reason)}"
    end
  end

  defp ensure_started do
    case Process.whereis(ProcessRegistry.Owner) do
      nil ->
        {:ok, _} = Application.ensure_all_started(:elixir_scope_foundation)
        :ok

      _pid ->
        :ok
    end
  end

  @doc """
  The supervisor of the calling process's sandbox (linked to it), or nil.
  Monitor it to learn when a sandbox ended by its owner's exit is gone.
  """
  @spec supervisor() :: pid() | nil
  def supervisor, do: Process.get(@supervisor)

  @doc """
  Lets `other_pid` use the sandbox of `owner_pid` (its owner, or a process
  already allowed into it). `:ok` (also when `other_pid` is already in that
  sandbox); `{:error, :already_allowed}` when `other_pid` belongs to another
  sandbox; `{:error, :not_found}` when `owner_pid` belongs to none; a
  `%Types.Error{error_type: :invalid_input}` when an argument is not a pid.
  The allowance ends with the sandbox.
  """
  @spec allow(pid(), pid()) ::
          :ok | {:error, :already_allowed | :not_found | Types.Error.t()}
  def allow(owner_pid, other_pid) when is_pid(owner_pid) and is_pid(other_pid) do
    case row(owner_pid) do
      {namespace, owner} -> insert_allowance(other_pid, namespace, owner)
      nil -> {:error, :not_found}
    end
  end

  def allow(owner_pid, other_pid) do
    {:error,
     Types.Error.new(
       code: nil,
       error_type: :invalid_input,
       message:
         "Sandbox.allow/2 expects two pids, got: #{inspect(owner_pid)}, #{inspect(other_pid)}",
       severity: :low,
       context: %{owner_pid: owner_pid, other_pid: other_pid},
       category: :data,
       subcategory: :validation
     )}
  end

  defp insert_allowance(pid, namespace, owner) do
    cond do
      :ets.insert_new(@table, {pid, namespace, owner}) -> :ok
      match?({^namespace, _}, row(pid)) -> :ok
      true -> {:error, :already_allowed}
    end
  end

  defp row(pid) do
    case :ets.lookup(@table, pid) do
      [{_pid, namespace, owner}] -> {namespace, owner}
      [] -> nil
    end
  rescue
    ArgumentError -> nil
  end

  @doc """
  Ends the calling process's sandbox now: its services stop and every
  trace of it is removed before this returns. `:ok` (also when the caller
  owns none).
  """
  @spec checkin() :: :ok
  def checkin do
    Process.delete(@owned)

    case Process.delete(@supervisor) do
      sup when is_pid(sup) ->
        Process.unlink(sup)
        stop(sup)

      nil ->
        :ok
    end
  end

  defp stop(sup) do
    Supervisor.stop(sup, :shutdown)
  catch
    :exit, _already_gone -> :ok
  end

  @doc false
  # Child of each sandbox's supervisor, started first and stopped last: it
  # binds the owner in the ownership table and, when the sandbox stops,
  # removes every row of the namespace (owner, allowances, shared).
  def start_guard({:test, ref} = namespace, owner) when is_reference(ref) and is_pid(owner) do
    parent = self()
    :proc_lib.start_link(:erlang, :apply, [fn -> guard(parent, namespace, owner) end, []])
  end

  defp guard(parent, namespace, owner) do
    Process.flag(:trap_exit, true)
    :ets.insert(@table, {owner, namespace, owner})
    :proc_lib.init_ack(parent, {:ok, self()})
    guard_loop(parent, namespace)
  end

  defp guard_loop(parent, namespace) do
    receive do
      {:EXIT, ^parent, reason} ->
        :ets.match_delete(@table, {:_, namespace, :_})
        exit(reason)

      _other ->
        guard_loop(parent, namespace)
    end
  end
end
