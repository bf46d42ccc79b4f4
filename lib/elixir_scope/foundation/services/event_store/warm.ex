defmodule ElixirScope.Foundation.Services.EventStore.Warm do
  @moduledoc false
  # The event store's disk tier (`storage.warm`), seen from Elixir: opening
  # it from the config, writes through it, and the merge of its answers with
  # the hot tier's. The tier itself is `native/foundation_core/src/store/warm`.
  # Writes: with a background fsync (the default) a normal-scheduler NIF
  # copies the event into the tier's memory-mapped journal and puts it in
  # the hot tier, and answers at once; a thread of the tier writes the
  # journal to the engine. With `fsync_interval_ms: 0` the NIF queues the
  # write to the tier's writer thread (which fsyncs before answering) and
  # the caller waits for the answer in `receive`. A write that would have to
  # wait goes to its dirty twin. Every other call that touches the disk runs
  # on a dirty I/O scheduler.
  #
  # Time: the disk tier orders events by system time, `timestamp +
  # System.time_offset(:millisecond)` of the VM lifetime that stored them.
  # Hot events were all stored by this lifetime, so their system time is
  # their timestamp plus today's offset; a caller's time range and prune
  # cutoff (monotonic, in its own clock) are converted the same way.

  require Logger

  alias ElixirScope.Foundation.Native
  alias ElixirScope.Foundation.Services.EventStore.Support

  @mb 1024 * 1024
  @default_fsync_ms 1000

  @zero_stats %{
    warm_enabled: false,
    warm_events: 0,
    warm_bytes: 0,
    warm_evicted: 0,
    warm_corrupt_records: 0
  }

  @doc """
  Opens the tier a new store of `namespace` uses, or `nil` (hot only). A
  `{:test, ref}` store uses one only when started with `warm: [path: ...]`;
  `:production` reads `storage.warm` of the running config (else of the
  application env). Failures are logged and give `nil`.
  """
  def open(namespace, opts) do
    case settings(namespace, opts) do
      nil -> nil
      settings -> open_settings(namespace, settings)
    end
  end

  defp open_settings(namespace, settings) do
    path = settings |> Map.get(:path, "./elixir_scope_data") |> to_string() |> Path.expand()
    max_bytes = non_neg(Map.get(settings, :max_size_mb, 100)) * @mb
    compression = Map.get(settings, :compression, :zstd)
    fsync_ms = fsync_ms()

    case Native.warm_open(path, max_bytes, compression, fsync_ms) do
      {:ok, {handle, notes}} ->
        Enum.each(notes, &Logger.error/1)
        handle

      {:error, {_kind, message}} ->
        Logger.error(
          "ElixirScope event store #{inspect(namespace)}: warm storage disabled, " <>
            "running hot-only: #{message}"
        )

        nil
    end
  end

  defp settings({:test, _}, opts) do
    case Keyword.get(opts, :warm) do
      nil -> nil
      warm -> Map.new(warm)
    end
  end

  defp settings(:production, opts) do
    case Keyword.get(opts, :warm) do
      nil -> production_settings()
      warm -> Map.new(warm)
    end
  end

  defp settings(_namespace, _opts), do: nil

  defp production_settings do
    warm =
      case live_config() do
        {:ok, %{} = warm} -> warm
        _ -> env_config()
      end

    if Map.get(warm, :enable, false), do: warm, else: nil
  end

  defp live_config do
    ElixirScope.Foundation.Config.get([:storage, :warm])
  catch
    _, _ -> :error
  end

  defp env_config do
    case ElixirScope.Foundation.Logic.ConfigLogic.build_config([]) do
      {:ok, config} -> config.storage.warm
      {:error, _} -> %{}
    end
  end

  @doc "The fsync interval (`config :elixir_scope_foundation, :warm_storage, fsync_interval_ms:`)."
  def fsync_ms do
    :elixir_scope_foundation
    |> Application.get_env(:warm_storage, [])
    |> Keyword.get(:fsync_interval_ms, @default_fsync_ms)
    |> non_neg()
    |> min(65_535)
  end

  defp non_neg(n) when is_integer(n) and n > 0, do: n
  defp non_neg(_), do: 0

  defp offset, do: System.time_offset(:millisecond)

  @doc """
  Stores `event` on disk, then in the hot tier: `{:ok, id}` or an error.
  A normal-scheduler NIF validates it and writes it to the tier's journal
  (or queues it to the tier's writer thread, whose answer this process
  then waits for in `receive`); either way `{:ok, id}` means the event is
  handed to the OS. An event the NIF cannot take on a normal scheduler (too
  big to check there) is checked by `validate` (its error is returned),
  then written by the dirty twin; a valid one whose write would have to
  wait for the disk tier (`:busy`) goes to the dirty twin at once.
  """
  def put(handle, warm, event, validate) do
    write(validate, fn off, tag ->
      {Native.warm_put(handle, warm, event, off, tag),
       fn -> Native.warm_put_dirty(handle, warm, event, off, tag) end}
    end)
  end

  @doc "Stores a chunk of `events` as one disk write, then in the hot tier; as `put/4`."
  def put_batch(handle, warm, events, validate) do
    write(validate, fn off, tag ->
      {Native.warm_put_batch(handle, warm, events, off, tag),
       fn -> Native.warm_put_batch_dirty(handle, warm, events, off, tag) end}
    end)
  end

  # Writes (`queue.(offset, tag)` gives the normal NIF's answer and its
  # dirty twin); a write queued to the writer thread (`{:ok, :queued}`) is
  # answered by `{tag, result}`.
  defp write(validate, queue) do
    tag = make_ref()
    {normal, dirty} = queue.(offset(), tag)

    queued =
      case normal do
        # Checked already; the journal write would have to wait.
        :busy -> dirty.()
        declined when declined in [:dirty, :invalid] -> with(:ok <- validate.(), do: dirty.())
        answer -> answer
      end

    case queued do
      {:ok, :queued} ->
        receive do
          {^tag, result} -> Support.native(result)
        end

      error ->
        Support.native(error)
    end
  end

  @doc "The event with `id` from disk, or `nil`."
  def get(warm, id) do
    case Native.warm_get(warm, id) do
      nil -> nil
      {:error, _} = error -> Support.native(error)
      {_sys_ts, event} -> {:ok, event}
    end
  end

  @doc """
  The merged answer of a normalized query: `hot_query.(offset, limit)` runs
  the hot tier's query; both tiers give their first `offset + limit`
  matches, the union (by event id) is ordered, then offset and limit apply.
  The disk is not read when the hot answer is the whole answer;
  `retired.()` gives the hot tier's
  `{:ok, newest timestamp retention removed | nil}`.
  """
  def query(warm, {type, range, order, offset, limit}, hot_query, retired) do
    want = if limit > 0, do: offset + limit, else: 0
    off = offset()
    sys_range = range && {sat(elem(range, 0) + off), sat(elem(range, 1) + off)}

    with {:ok, hot} <- hot_query.(0, want),
         {:ok, disk} <- disk_query(warm, {type, sys_range, order, want}, hot, off, retired) do
      merged = merge(hot, disk, off, order)
      merged = Enum.drop(merged, offset)
      {:ok, if(limit > 0, do: Enum.take(merged, limit), else: merged)}
    end
  end

  defp disk_query(warm, {type, sys_range, order, want}, hot, off, retired) do
    if hot_answers?(warm, hot, {order, want}, off, retired),
      do: {:ok, []},
      else: Support.native(Native.warm_query(warm, type, sys_range, order, want))
  end

  # Whether the disk can hold no event that ranks in the answer and memory
  # lacks. The events only the disk holds are those retention removed from
  # memory (none newer than `retired.()`) and those on disk when the tier
  # opened (none newer than `Native.warm_floor/1`; unknown while the tier's
  # indexes are rebuilt). With neither, memory holds everything; else a
  # query for the newest events is answered by memory when its last hit is
  # newer than all of those.
  defp hot_answers?(warm, hot, {order, want}, off, retired) do
    case disk_floor(warm, off, retired) do
      nil ->
        true

      :unknown ->
        false

      floor ->
        order == :timestamp_desc and want > 0 and length(hot) >= want and
          List.last(hot).timestamp + off > floor
    end
  end

  # The newest system time of the events only the disk may hold: nil when
  # there are none, `:unknown` when that cannot be told now.
  defp disk_floor(warm, off, retired) do
    with opened when opened != :unknown <- Native.warm_floor(warm),
         {:ok, removed} <- retired.() do
      newest(opened, removed && sat(removed + off))
    else
      _ -> :unknown
    end
  end

  defp newest(nil, b), do: b
  defp newest(a, nil), do: a
  defp newest(a, b), do: max(a, b)

  @doc """
  The merged correlation group, by ascending (system time, id); the disk
  is not read when it holds nothing memory lacks (see `query/4`).
  """
  def get_by_correlation(warm, cid, {:ok, hot}, retired) do
    off = offset()

    disk =
      if disk_floor(warm, off, retired) == nil,
        do: {:ok, []},
        else: Support.native(Native.warm_get_by_correlation(warm, cid))

    with {:ok, disk} <- disk, do: {:ok, merge(hot, disk, off, :timestamp)}
  end

  def get_by_correlation(_warm, _cid, error, _retired), do: error

  @doc "Prunes the disk tier below `ts` (caller's monotonic clock); combines with the hot count."
  def prune_before(warm, ts, {:ok, hot_n}) do
    with {:ok, n} <- Support.native(Native.warm_prune_before(warm, sat(ts + offset()))) do
      {:ok, max(n, hot_n)}
    end
  end

  def prune_before(_warm, _ts, error), do: error

  @doc false
  def zero_stats, do: @zero_stats

  @doc "A time range of the caller's clock in system time (the tier's)."
  def sys_range(nil), do: nil
  def sys_range({lo, hi}), do: {sat(lo + offset()), sat(hi + offset())}

  @doc "Adds the warm keys to (and, with a tier, the durable counts into) `stats`."
  def stats(nil, stats), do: Map.merge(stats, @zero_stats)

  def stats(warm, stats) do
    w = Map.new(Native.warm_stats(warm))

    Map.merge(stats, %{
      warm_enabled: true,
      warm_events: w.warm_events,
      warm_bytes: w.warm_disk_bytes,
      warm_evicted: w.warm_evicted,
      warm_corrupt_records: w.warm_corrupt_records,
      events_stored: max(w.warm_stored, stats.events_stored),
      events_pruned: max(w.warm_pruned, stats.events_pruned),
      current_event_count: max(w.warm_events, stats.current_event_count)
    })
  end

  @doc "Logs the damaged records the tier found since the last call."
  def log_corrupt(nil, _namespace), do: :ok

  def log_corrupt(warm, namespace) do
    case Native.warm_take_corrupt(warm) do
      [] ->
        :ok

      ids ->
        Logger.error(
          "ElixirScope event store #{inspect(namespace)}: warm storage skipped " <>
            "#{length(ids)} damaged record(s) (checksum), event ids #{inspect(Enum.take(ids, 20))}"
        )
    end
  end

  @doc "Empties the tier (test-mode `reset_state`)."
  def clear(nil), do: {:ok, :ok}
  def clear(warm), do: Support.native(Native.warm_clear(warm))

  @doc "Syncs and closes the tier (normal stop)."
  def close(nil), do: :ok
  def close(warm), do: Native.warm_close(warm)

  # Union by event id (hot first), in the query's order. Hot events carry
  # this lifetime's offset; disk events their stored system time.
  defp merge(hot, disk, off, order) do
    hot
    |> Enum.map(&{&1.timestamp + off, &1})
    |> Enum.concat(disk)
    |> Enum.uniq_by(fn {_ts, event} -> event.event_id end)
    |> sort(order)
    |> Enum.map(&elem(&1, 1))
  end

  defp sort(pairs, :timestamp), do: Enum.sort_by(pairs, fn {ts, e} -> {ts, e.event_id} end)

  defp sort(pairs, :timestamp_desc),
    do: Enum.sort_by(pairs, fn {ts, e} -> {ts, e.event_id} end, :desc)

  defp sort(pairs, _by_id), do: Enum.sort_by(pairs, fn {_ts, e} -> e.event_id end)

  defp sat(n), do: Support.clamp(n)
end
