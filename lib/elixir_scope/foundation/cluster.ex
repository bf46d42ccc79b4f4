defmodule ElixirScope.Foundation.Cluster do
  @moduledoc """
  Cluster scope: one foundation across the nodes of an Erlang cluster, on
  distributed Erlang alone (`:pg` for membership, `:erpc` for calls).

  The application starts a `:pg` scope (this module's name is the scope's
  name). When a `:production` ConfigServer, EventStore or TelemetryService
  starts, it joins the group of its service (`:config_server`,
  `:event_store`, `:telemetry_service`) in that scope. The nodes with a
  member in a group are the cluster for that service: a node that connects
  and runs the application is a member as soon as its services start, a
  node that goes down leaves when its connection closes. There is nothing
  to configure beyond connecting the nodes (`Node.connect/1`, `libcluster`,
  ...). On a node that is not distributed the cluster is the local node.

  The facades call this module when given `scope: :cluster`:

      Events.query(query, scope: :cluster, timeout: ms)
      Events.get_by_correlation(correlation_id, scope: :cluster, timeout: ms)
      Config.update(path, value, scope: :cluster, timeout: ms)
      Telemetry.get_metrics(scope: :cluster, timeout: ms)

  Options:

    * `:scope` - `:local` (default: this node's service, as without the
      option) or `:cluster`
    * `:timeout` - milliseconds for the whole call, every member included
      (default: the config's `interface.query_timeout`, else 10 000)
    * `:namespace` - must be `:production` (the default) with
      `scope: :cluster`; a `{:test, ref}` namespace is an
      `{:error, %Types.Error{error_type: :invalid_input}}`

  ## Fan-out and results

  A call sends one `:erpc` request to every member (the local node
  included) at once and waits for the answers until one deadline. A member
  that does not answer in time (busy, suspended, partitioned) is reported
  as `:timeout`, a member whose connection drops as `:noconnection`, and a
  member that raised or answered an error (its service stopped, for
  example) as `{:exception, reason}`. Nothing raises because a node is gone.

    * every member answered: `{:ok, result}` (`:ok` for a config update)
    * some did not: `{:partial, result, failed}` (`{:partial, failed}` for
      a config update), `failed = [{node, :timeout | :noconnection |
      {:exception, term}}]`; the result holds the answers that arrived.

  ## Queries

  Each member runs the query on its own store and returns at most its
  first `offset + limit` matches (everything when no limit is given),
  with each event's time as system time. The caller merges the answers
  and applies `offset` and `limit` to the merged list, so the result is
  what a single store holding all events would return:

    * `order_by: :timestamp` - ascending system time (the event's
      `timestamp` plus the `System.time_offset(:millisecond)` of the node
      that stored it), ties by node name, then `event_id`;
      `:timestamp_desc` is the exact reverse;
    * `order_by: :event_id` - ascending `event_id`, ties by node name;
    * no (or another) `order_by` - by node name, then `event_id`.

  A `time_range` is in the caller's monotonic milliseconds, like a local
  query: the caller's bounds are turned into system time, then into each
  member's monotonic clock on that member. `get_by_correlation/2` merges
  like `order_by: :timestamp`. Events come back unchanged.

  ## Config updates

  `update_config/3` validates the update against the local config first:
  an invalid update changes no node and returns the local error. Then
  every member applies it through its own ConfigServer (its subscribers
  notified, its audit event stored). Cluster updates are not totally
  ordered: two concurrent updates of one path may land in different orders
  on different nodes. There is no rollback: a member that fails or does
  not answer keeps its config while the others have the new value (the
  `{:partial, failed}` result names it). A node that joins later keeps its
  own config.
  """

  alias ElixirScope.Foundation.Error
  alias ElixirScope.Foundation.Logic.ConfigLogic
  alias ElixirScope.Foundation.Services.{ConfigServer, Errors, EventStore, TelemetryService}
  alias ElixirScope.Foundation.Services.EventStore.Support
  alias ElixirScope.Foundation.Types

  @services [:config_server, :event_store, :telemetry_service]
  @default_timeout 10_000

  @typedoc "Why a member is missing from a result."
  @type failure :: :timeout | :noconnection | {:exception, term()}

  @typedoc "The members that did not answer, by node."
  @type failed :: [{node(), failure()}]

  @typedoc "Options of the `scope: :cluster` functions."
  @type opts :: [
          scope: :local | :cluster,
          timeout: non_neg_integer(),
          namespace: :production | {:test, reference()}
        ]

  @typedoc "A query's result across the cluster."
  @type events_result ::
          {:ok, [Types.Event.t()]}
          | {:partial, [Types.Event.t()], failed()}
          | {:error, Types.Error.t()}

  ## Membership

  @doc "The child spec of the `:pg` scope the application starts."
  @spec child_spec(term()) :: Supervisor.child_spec()
  def child_spec(_arg) do
    %{id: __MODULE__, start: {:pg, :start_link, [__MODULE__]}, type: :worker}
  end

  @doc """
  Joins the calling process to the group of `service` when `namespace` is
  `:production` (services call this from their `init/1`); `:ok` also when
  the scope is not running or the namespace is a test one.
  """
  @spec join(term(), atom()) :: :ok
  def join(:production, service) when service in @services do
    :pg.join(__MODULE__, service, self())
  catch
    _kind, _reason -> :ok
  end

  def join(_namespace, _service), do: :ok

  @doc """
  The nodes with a member of `service`'s group, sorted. Without the `:pg`
  scope: this node when its service is registered, else `[]`.
  """
  @spec members(atom()) :: [node()]
  def members(service) when service in @services do
    __MODULE__ |> :pg.get_members(service) |> Enum.map(&node/1) |> Enum.uniq() |> Enum.sort()
  catch
    :error, _ ->
      if ElixirScope.Foundation.ProcessRegistry.registered?(:production, service),
        do: [node()],
        else: []
  end

  @doc """
  Reads the `:scope` option: `:cluster`, or `{:local, opts}` with the
  cluster options (`:scope`, `:timeout`) removed, or an `:invalid_input`
  error naming a bad value.
  """
  @spec scope(keyword()) :: :cluster | {:local, keyword()} | {:error, Types.Error.t()}
  def scope([]), do: {:local, []}

  def scope(opts) when is_list(opts) do
    case Keyword.get(opts, :scope, :local) do
      :cluster -> :cluster
      :local -> {:local, Keyword.drop(opts, [:scope, :timeout])}
      other -> invalid(:scope, other, "scope must be :local or :cluster")
    end
  end

  def scope(opts), do: invalid(:opts, opts, "options must be a keyword list")

  ## Caller side

  @doc "`Events.query/2` across the cluster (see the module doc)."
  @spec query(map(), opts()) :: events_result()
  def query(query, opts) when is_map(query) do
    with {:ok, timeout} <- check(opts) do
      case Support.normalize_query(query) do
        {:ok, {type, range, order, offset, limit}} ->
          wire = {wire_type(type), range, order, if(limit > 0, do: offset + limit, else: 0)}
          request = {:member_query, [wire, System.time_offset(:millisecond)]}
          collect_events(:event_store, request, timeout, order, offset, limit)

        :empty ->
          {:ok, []}

        {:error, _} = error ->
          error
      end
    end
  end

  @doc "`Events.get_by_correlation/2` across the cluster: timestamp order, as system time."
  @spec get_by_correlation(String.t(), opts()) :: events_result()
  def get_by_correlation(correlation_id, opts) when is_binary(correlation_id) do
    with {:ok, timeout} <- check(opts) do
      request = {:member_correlation, [correlation_id]}
      collect_events(:event_store, request, timeout, :timestamp, 0, 0)
    end
  end

  def get_by_correlation(other, _opts),
    do: invalid(:correlation_id, other, "correlation id must be a string")

  @doc """
  `Config.update/3` on every member: `:ok`, `{:partial, failed}`, or the
  local validation error (then no node changed).
  """
  @spec update_config([atom()], term(), opts()) ::
          :ok | {:partial, failed()} | {:error, Types.Error.t()}
  def update_config(path, value, opts) when is_list(path) do
    with {:ok, timeout} <- check(opts),
         {:ok, config} <- ConfigServer.get([], []),
         {:ok, _new_config} <- ConfigLogic.update_config(config, path, value),
         {:ok, nodes} <- nodes(:config_server) do
      case fan_out(nodes, {:member_update, [path, value]}, timeout) do
        {_applied, []} -> :ok
        {_applied, failed} -> {:partial, failed}
      end
    end
  end

  def update_config(path, _value, _opts),
    do: invalid(:path, path, "config path must be a list of keys")

  @doc "`Telemetry.get_metrics/1` of every member, keyed by node."
  @spec get_metrics(opts()) ::
          {:ok, %{node() => map()}}
          | {:partial, %{node() => map()}, failed()}
          | {:error, Types.Error.t()}
  def get_metrics(opts) do
    with {:ok, timeout} <- check(opts),
         {:ok, nodes} <- nodes(:telemetry_service) do
      case fan_out(nodes, {:member_metrics, []}, timeout) do
        {answers, []} -> {:ok, Map.new(answers)}
        {answers, failed} -> {:partial, Map.new(answers), failed}
      end
    end
  end

  ## Member side (run on each member through :erpc)

  @doc false
  # `{type_name | nil, range | nil, order, limit}`; the range is in the
  # caller's clock, `caller_offset` its time offset. Returns the matches as
  # `{system_ms, event}` in the member's order.
  def member_query({type_name, range, order, limit}, caller_offset) do
    offset = System.time_offset(:millisecond)

    case existing_type(type_name) do
      {:ok, type} ->
        %{order_by: if(order == :unordered, do: :event_id, else: order)}
        |> put_some(:event_type, type)
        |> put_some(:time_range, shift(range, caller_offset - offset))
        |> put_some(:limit, if(limit > 0, do: limit))
        |> EventStore.query()
        |> with_system_time(offset)

      :unknown ->
        {:ok, []}
    end
  end

  @doc false
  def member_correlation(correlation_id) do
    correlation_id
    |> EventStore.get_by_correlation()
    |> with_system_time(System.time_offset(:millisecond))
  end

  @doc false
  def member_update(path, value) do
    case ConfigServer.update(path, value) do
      :ok -> {:ok, :ok}
      error -> error
    end
  end

  @doc false
  def member_metrics, do: TelemetryService.get_metrics()

  ## Private

  defp check(opts) do
    case ElixirScope.Foundation.Sandbox.namespace(opts) do
      :production -> timeout(Keyword.get(opts, :timeout))
      other -> invalid(:namespace, other, "scope: :cluster needs the :production namespace")
    end
  end

  defp timeout(nil) do
    case ConfigServer.get([:interface, :query_timeout], []) do
      {:ok, ms} when is_integer(ms) and ms >= 0 -> {:ok, ms}
      _ -> {:ok, @default_timeout}
    end
  end

  defp timeout(ms) when is_integer(ms) and ms >= 0, do: {:ok, ms}
  defp timeout(other), do: invalid(:timeout, other, "timeout must be a non-negative integer")

  defp nodes(service) do
    case members(service) do
      [] -> {:error, Errors.unavailable(service)}
      nodes -> {:ok, nodes}
    end
  end

  defp collect_events(service, request, timeout, order, offset, limit) do
    with {:ok, nodes} <- nodes(service) do
      {answers, failed} = fan_out(nodes, request, timeout)
      events = merge(answers, order) |> Enum.drop(offset) |> take(limit)
      if failed == [], do: {:ok, events}, else: {:partial, events, failed}
    end
  end

  # One request per node, all sent before any answer is awaited; every
  # wait uses what is left of the one deadline, so the call returns by it
  # whatever the members do. Answers in node order.
  defp fan_out(nodes, {fun, args}, timeout) do
    deadline = System.monotonic_time(:millisecond) + timeout
    requests = Enum.map(nodes, &{&1, :erpc.send_request(&1, __MODULE__, fun, args)})

    {answers, failed} =
      Enum.reduce(requests, {[], []}, fn {node, request}, {answers, failed} ->
        left = max(deadline - System.monotonic_time(:millisecond), 0)

        case receive_answer(request, left) do
          {:ok, value} -> {[{node, value} | answers], failed}
          {:failed, reason} -> {answers, [{node, reason} | failed]}
        end
      end)

    {Enum.reverse(answers), Enum.reverse(failed)}
  end

  defp receive_answer(request, timeout) do
    case :erpc.receive_response(request, timeout) do
      {:ok, value} -> {:ok, value}
      {:error, reason} -> {:failed, {:exception, reason}}
      other -> {:failed, {:exception, {:bad_answer, other}}}
    end
  catch
    :error, {:erpc, :timeout} -> {:failed, :timeout}
    :error, {:erpc, :noconnection} -> {:failed, :noconnection}
    :exit, {:signal, :noconnection} -> {:failed, :noconnection}
    :error, {:exception, reason, _stacktrace} -> {:failed, {:exception, reason}}
    :exit, {:exception, reason} -> {:failed, {:exception, {:exit, reason}}}
    :exit, {:signal, reason} -> {:failed, {:exception, {:exit, reason}}}
    :error, {:erpc, reason} -> {:failed, {:exception, reason}}
    kind, reason -> {:failed, {:exception, {kind, reason}}}
  end

  # Each member's list is already in this order, so sorting the
  # concatenation by the full key only interleaves them.
  defp merge(answers, order) do
    keyed =
      for {node, pairs} <- answers, {system_ms, event} <- pairs do
        {merge_key(order, system_ms, node, event.event_id), event}
      end

    direction = if order == :timestamp_desc, do: :desc, else: :asc
    keyed |> Enum.sort_by(&elem(&1, 0), direction) |> Enum.map(&elem(&1, 1))
  end

  defp merge_key(order, ms, node, id) when order in [:timestamp, :timestamp_desc],
    do: {ms, node, id}

  defp merge_key(:event_id, _ms, node, id), do: {id, node}
  defp merge_key(:unordered, _ms, node, id), do: {node, id}

  defp take(events, 0), do: events
  defp take(events, limit), do: Enum.take(events, limit)

  # The type travels as a string so a member never creates an atom for it;
  # a type no member knows as an atom matches nothing there.
  defp wire_type(nil), do: nil
  defp wire_type(type), do: Atom.to_string(type)

  defp existing_type(nil), do: {:ok, nil}

  defp existing_type(name) do
    {:ok, String.to_existing_atom(name)}
  rescue
    ArgumentError -> :unknown
  end

  defp shift(nil, _delta), do: nil
  defp shift({start, stop}, delta), do: {start + delta, stop + delta}

  defp put_some(map, _key, nil), do: map
  defp put_some(map, key, value), do: Map.put(map, key, value)

  defp with_system_time({:ok, events}, offset),
    do: {:ok, Enum.map(events, &{&1.timestamp + offset, &1})}

  defp with_system_time(error, _offset), do: error

  defp invalid(key, value, message) do
    {:error,
     Error.from_native({:invalid_input, "#{message}, got: #{inspect(value)}"}, %{key => value})}
  end
end
