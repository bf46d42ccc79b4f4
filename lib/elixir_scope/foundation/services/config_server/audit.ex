defmodule ElixirScope.Foundation.Services.ConfigServer.Audit do
  @moduledoc false
  # ConfigServer's side effects after an update or reset, in the server's
  # own namespace:
  #
  #   * the audit event (as `Events.new_event/2` would build it: fresh id,
  #     millisecond monotonic timestamp, wall time, node, pid of the
  #     server), written synchronously into the namespace's native event
  #     store through its handle, never through the EventStore process: in
  #     the usual case its stored form is written from the fields by one
  #     NIF call (`Native.store_put_audit/8`), else the `%Event{}` is built
  #     here and stored with `EventStore.store_direct/2`. Once the server
  #     replies, every process can
  #     query the event, and a suspended, dead or restarting EventStore
  #     process neither delays nor loses it. No handle (the store was
  #     stopped normally, or never started) means no audit, as in the
  #     original, counted as skipped.
  #   * the counters (the update's or reset's, and the store's
  #     `events_stored` for the audit event), recorded in the namespace's
  #     TelemetryService before `ConfigServer.update/3` or `reset/1`
  #     returns: by the server, or, for an update through
  #     `ConfigServer.update/3`, by the caller from the server's reply.
  #
  # Runs inside the ConfigServer process, on its state map, whose `audit`
  # field (`%{sent, failures, skipped}`) it owns (`count_all/3`,
  # `stored/2` and `update_counters/2` also run in callers). Never raises.

  require Logger

  alias ElixirScope.Foundation.Native
  alias ElixirScope.Foundation.Services.{EventStore, TelemetryService}
  alias ElixirScope.Foundation.Services.EventStore.Support
  alias ElixirScope.Foundation.Types.Event
  alias ElixirScope.Foundation.Utils

  @events_stored [:foundation, :event_store, :events_stored]

  @doc "The audit counters of a fresh state."
  def fields, do: %{audit: %{sent: 0, failures: 0, skipped: 0}}

  @doc """
  Stores the audit event `type` with `data` and counts the outcome in the
  state. Returns `{state, id}`, `id` nil when no event was stored.
  """
  def event(%{} = state, type, data) do
    case store(type, data, state.namespace) do
      {:ok, id} ->
        {bump(state, :sent), id}

      :skipped ->
        {bump(state, :skipped), nil}

      {:failed, reason} ->
        {state |> log_failure(type, reason) |> bump(:failures), nil}
    end
  end

  @doc """
  The counters of a stored audit event `id` of `type` (none for nil): the
  store's `[:foundation, :event_store, :events_stored]`, as
  `EventStore.store/2` records it; to record with `count_all/2`.
  """
  def stored(_type, nil), do: []
  def stored(type, id), do: [{@events_stored, %{event_type: type, event_id: id}}]

  @doc "The counters of an update of `path` whose audit event is `id` (or nil)."
  def update_counters(path, id),
    do: [{[:foundation, :config_updates], %{path: path}} | stored(:config_updated, id)]

  @doc """
  Records the counters of an update of `path` whose audit event is `id`
  (`update_counters/2`) from the caller of `ConfigServer.update/3`: both
  in one NIF call when an event was stored. Never raises; `:ok`.
  """
  def count_update(namespace, path, nil),
    do: count_all(namespace, update_counters(path, nil), :caller)

  def count_update(namespace, path, id) do
    [updated, stored] = update_counters(path, id)
    TelemetryService.Recorder.count_pair(namespace, updated, stored)
  end

  @doc """
  Records each `{name, metadata}` counter (value 1) in `namespace`; never
  raises; `:ok`. `:caller` when called outside the namespace's server (by
  `ConfigServer.update/3`): the namespace is then always named, since the
  caller may belong to a sandbox.
  """
  def count_all(namespace, counters, where \\ :server) do
    opts = if where == :caller, do: [namespace: namespace], else: telemetry_opts(namespace)

    for {name, metadata} <- counters do
      try do
        TelemetryService.emit_counter(name, 1, metadata, opts)
      catch
        _, _ -> :ok
      end
    end

    :ok
  end

  # `[]` skips the option parsing of the common namespace.
  defp telemetry_opts(:production), do: []
  defp telemetry_opts(namespace), do: [namespace: namespace]

  defp bump(%{audit: audit} = state, key),
    do: %{state | audit: %{audit | key => Map.fetch!(audit, key) + 1}}

  @us_per_day 86_400_000_000

  @doc """
  `DateTime.utc_now/0` (the same value: the current system time, truncated
  to microseconds, precision 6), without a calendar conversion of the date
  on every call: the date of the current day is cached in the calling
  process's dictionary.
  """
  def utc_now, do: utc_from_unix_us(System.os_time(:microsecond))

  @doc "`DateTime.from_unix!(us, :microsecond)`, the date cached per day."
  def utc_from_unix_us(us) do
    day = Integer.floor_div(us, @us_per_day)

    {year, month, day_of_month} =
      case Process.get(:elixir_scope_audit_day) do
        {^day, date} ->
          date

        _ ->
          %Date{year: y, month: m, day: d} = Date.add(~D[1970-01-01], day)
          Process.put(:elixir_scope_audit_day, {day, {y, m, d}})
          {y, m, d}
      end

    in_day = us - day * @us_per_day
    second = div(in_day, 1_000_000)

    %DateTime{
      year: year,
      month: month,
      day: day_of_month,
      hour: div(second, 3600),
      minute: rem(div(second, 60), 60),
      second: rem(second, 60),
      microsecond: {rem(in_day, 1_000_000), 6},
      std_offset: 0,
      utc_offset: 0,
      zone_abbr: "UTC",
      time_zone: "Etc/UTC",
      calendar: Calendar.ISO
    }
  end

  # The audit data are a path and two config leaves, or two integers: valid
  # event data, and small unless a leaf is a big integer (a valid
  # `batch_size`, say), which the validating write measures.
  defp small?(%{path: path, new_value: new, previous_value: {:ok, old}, timestamp: t}),
    do: atoms?(path, 8) and leaf?(new) and leaf?(old) and leaf?(t)

  defp small?(%{timestamp: t, reset_from_updates_count: n}), do: leaf?(t) and leaf?(n)
  defp small?(_data), do: false

  defp leaf?(value) when is_integer(value), do: value in -0x4000000000000000..0x3FFFFFFFFFFFFFFF
  defp leaf?(value), do: is_float(value) or is_atom(value)

  defp atoms?([], _left), do: true
  defp atoms?([atom | rest], left) when is_atom(atom) and left > 0, do: atoms?(rest, left - 1)
  defp atoms?(_other, _left), do: false

  # Failures are counted in status/0; the log gets the 1st, 101st, ... only,
  # so a broken store does not flood it.
  defp log_failure(state, type, reason) do
    n = state.audit.failures

    if rem(n, 100) == 0,
      do:
        Logger.warning(
          "ConfigServer audit event #{type} not stored (#{n + 1} failures so far): #{inspect(reason)}"
        )

    state
  end

  # The usual case (a store without a warm tier, small data) writes the
  # event in one NIF call that builds its stored form from the fields
  # (`Native.store_put_audit/8`), so no `%Event{}` or `%DateTime{}` is built
  # here; anything else builds the event and stores it as before.
  defp store(type, data, namespace) do
    case Support.lookup(namespace) do
      %{handle: handle} = entry when not is_map_key(entry, :warm) or entry.warm == nil ->
        if small?(data),
          do: put_audit(handle, type, data, namespace),
          else: put_event(type, data, namespace)

      _ ->
        put_event(type, data, namespace)
    end
  catch
    kind, reason -> {:failed, {kind, reason}}
  end

  defp put_audit(handle, type, data, namespace) do
    Native.store_put_audit(
      handle,
      Utils.generate_id(),
      type,
      # The data's timestamp: the same monotonic millisecond the event
      # would read.
      data.timestamp,
      :os.system_time(:microsecond),
      Node.self(),
      self(),
      data
    )
    |> outcome()
  rescue
    # A field the native form does not take: the usual write.
    ArgumentError -> put_event(type, data, namespace)
  end

  defp put_event(type, data, namespace) do
    event = %Event{
      event_id: Utils.generate_id(),
      event_type: type,
      timestamp: Utils.monotonic_timestamp(),
      wall_time: utc_now(),
      node: Node.self(),
      pid: self(),
      correlation_id: nil,
      parent_id: nil,
      data: data
    }

    event
    |> EventStore.store_direct(namespace: namespace, valid: small?(data))
    |> outcome()
  end

  defp outcome({:ok, id}), do: {:ok, id}
  defp outcome({:error, %{error_type: :service_unavailable}}), do: :skipped
  defp outcome({:error, {_kind, _detail}} = native), do: native |> Support.native() |> outcome()
  defp outcome(other), do: {:failed, other}
end
