defmodule ElixirScope.Foundation.Native do
  @moduledoc false
  # The only module that knows NIF names. Every stub body is exactly
  # `:erlang.nif_error(:not_loaded)`; the Rust library replaces them on load.

  @on_load :load_nif

  @doc false
  def load_nif do
    # The Elixir compiler loads every module as it defines it (from memory:
    # no .beam path yet), and our cargo compiler runs after it. Nothing calls
    # a NIF at compile time, so that copy loads no library: on a first build
    # there is none yet, and on a rebuild it would be the previous one, which
    # the VM then keeps for this module's later loads in the same VM (a
    # `mix run` or `mix test` after the build would miss new NIFs). The
    # cargo compiler unloads that copy, so the first use loads the module
    # from its .beam file, and with it the installed library.
    if is_list(:code.which(__MODULE__)), do: load_library(), else: :ok
  end

  defp load_library do
    path = library_path()

    # The load info tells the library the VM's native time unit.
    native_unit = System.convert_time_unit(1, :second, :native)

    case :erlang.load_nif(String.to_charlist(path), native_unit) do
      :ok -> :ok
      {:error, {reason, text}} -> report_missing(path, reason, text)
    end
  end

  defp report_missing(path, reason, text) do
    require Logger

    Logger.error("""
    ElixirScope.Foundation could not load its native library #{path}.so \
    (#{inspect(reason)}: #{text}).
    Build it with `mix compile` (needs Rust >= 1.91: https://rustup.rs), or \
    install a prebuilt archive with \
    `ELIXIR_SCOPE_FOUNDATION_PREBUILT=DIR mix compile` (archives made by \
    `mix elixir_scope_foundation.nif.package`).
    """)

    {:error, reason}
  end

  defp library_path do
    case :code.priv_dir(:elixir_scope_foundation) do
      {:error, _} -> Path.join(["priv", "native", "foundation_nif"])
      dir -> Path.join([List.to_string(dir), "native", "foundation_nif"])
    end
  end

  # info
  def native_version, do: :erlang.nif_error(:not_loaded)

  # validation
  def config_validate(_config), do: :erlang.nif_error(:not_loaded)
  def config_validate_section(_section, _value), do: :erlang.nif_error(:not_loaded)
  def event_validate(_event, _data_size), do: :erlang.nif_error(:not_loaded)
  def event_validate_required(_event), do: :erlang.nif_error(:not_loaded)
  def event_validate_types(_event), do: :erlang.nif_error(:not_loaded)
  def event_validate_data_size(_data_size), do: :erlang.nif_error(:not_loaded)
  def event_validate_type(_event_type), do: :erlang.nif_error(:not_loaded)
  def validation_constants, do: :erlang.nif_error(:not_loaded)
  # scheduling (Native.Route)
  def native_constants, do: :erlang.nif_error(:not_loaded)

  # store
  def store_new(_shards, _max_events, _max_age_ms, _async_capacity),
    do: :erlang.nif_error(:not_loaded)

  def store_set_limits(_store, _max_events, _max_age_ms), do: :erlang.nif_error(:not_loaded)
  def store_put(_store, _event), do: :erlang.nif_error(:not_loaded)

  def store_put_counted(_store, _event, _metrics, _name),
    do: :erlang.nif_error(:not_loaded)

  def store_put_valid(_store, _event), do: :erlang.nif_error(:not_loaded)

  def store_put_audit(_store, _id, _type, _timestamp, _wall_us, _node, _pid, _data),
    do: :erlang.nif_error(:not_loaded)

  def store_put_batch(_store, _events), do: :erlang.nif_error(:not_loaded)
  def store_check_batch(_events), do: :erlang.nif_error(:not_loaded)
  def store_put_async(_store, _event), do: :erlang.nif_error(:not_loaded)
  def store_get(_store, _id), do: :erlang.nif_error(:not_loaded)
  def store_get_by_correlation(_store, _cid, _max), do: :erlang.nif_error(:not_loaded)
  def store_get_by_correlation_dirty(_store, _cid), do: :erlang.nif_error(:not_loaded)

  def store_query(_store, _type, _range, _order, _offset, _limit),
    do: :erlang.nif_error(:not_loaded)

  def store_query_dirty(_store, _type, _range, _order, _offset, _limit),
    do: :erlang.nif_error(:not_loaded)

  # store: long answers, one slice per call
  def store_query_slice(_store, _type, _range, _order, _after, _skip, _take),
    do: :erlang.nif_error(:not_loaded)

  def store_query_slice_dirty(_store, _type, _range, _order, _after, _skip, _take),
    do: :erlang.nif_error(:not_loaded)

  def store_correlation_slice(_store, _cid, _after), do: :erlang.nif_error(:not_loaded)
  def store_correlation_slice_dirty(_store, _cid, _after), do: :erlang.nif_error(:not_loaded)
  def store_match_count(_store, _type, _range), do: :erlang.nif_error(:not_loaded)
  def store_correlation_len(_store, _cid), do: :erlang.nif_error(:not_loaded)

  def store_subscribe(_store, _pid, _ref, _type, _cid, _max_in_flight, _buffer, _from_start),
    do: :erlang.nif_error(:not_loaded)

  def store_unsubscribe(_store, _id), do: :erlang.nif_error(:not_loaded)
  def store_ack(_store, _id, _count), do: :erlang.nif_error(:not_loaded)
  def store_subscriptions(_store), do: :erlang.nif_error(:not_loaded)
  def store_subscription_owner(_store, _pid), do: :erlang.nif_error(:not_loaded)
  def warm_attach(_store, _warm), do: :erlang.nif_error(:not_loaded)

  def warm_page(_warm, _type, _sys_range, _order, _cursor, _max),
    do: :erlang.nif_error(:not_loaded)

  # store: dirty twins of the calls above, used when those answer :dirty
  def store_put_dirty(_store, _event), do: :erlang.nif_error(:not_loaded)
  def store_put_batch_dirty(_store, _events), do: :erlang.nif_error(:not_loaded)
  def store_put_async_dirty(_store, _event), do: :erlang.nif_error(:not_loaded)
  def store_get_dirty(_store, _id), do: :erlang.nif_error(:not_loaded)

  def store_shard_count(_store), do: :erlang.nif_error(:not_loaded)
  def store_prune_shard(_store, _ts, _index), do: :erlang.nif_error(:not_loaded)
  def store_prune_shard_dirty(_store, _ts, _index), do: :erlang.nif_error(:not_loaded)
  def store_expire(_store), do: :erlang.nif_error(:not_loaded)
  def store_clear(_store), do: :erlang.nif_error(:not_loaded)
  def store_close(_store), do: :erlang.nif_error(:not_loaded)
  def store_stats(_store), do: :erlang.nif_error(:not_loaded)
  def store_retired_newest(_store), do: :erlang.nif_error(:not_loaded)
  def native_heap_bytes, do: :erlang.nif_error(:not_loaded)

  # metrics
  def metrics_new(_max_metrics), do: :erlang.nif_error(:not_loaded)
  def metrics_own(_handle), do: :erlang.nif_error(:not_loaded)

  def metrics_record(_handle, _name, _measurements, _metadata, _now),
    do: :erlang.nif_error(:not_loaded)

  def metrics_emit_counter(_handle, _name, _value, _metadata, _now),
    do: :erlang.nif_error(:not_loaded)

  def metrics_emit_counter_now(_handle, _name, _value, _metadata),
    do: :erlang.nif_error(:not_loaded)

  def metrics_add_cached(_handle, _name, _value), do: :erlang.nif_error(:not_loaded)
  def metrics_add_cached_pair(_handle, _name_a, _name_b), do: :erlang.nif_error(:not_loaded)

  # metrics: dirty twins of the calls above, used when those answer :dirty
  def metrics_record_dirty(_handle, _name, _measurements, _metadata, _now),
    do: :erlang.nif_error(:not_loaded)

  def metrics_emit_counter_dirty(_handle, _name, _value, _metadata, _now),
    do: :erlang.nif_error(:not_loaded)

  def metrics_snapshot(_handle), do: :erlang.nif_error(:not_loaded)
  def metrics_snapshot_small(_handle), do: :erlang.nif_error(:not_loaded)
  def metrics_cleanup(_handle, _cutoff), do: :erlang.nif_error(:not_loaded)
  def metrics_clear(_handle), do: :erlang.nif_error(:not_loaded)
  def metrics_status(_handle), do: :erlang.nif_error(:not_loaded)
  def metrics_attach(_handle, _names), do: :erlang.nif_error(:not_loaded)
  def metrics_detach(_handle, _names), do: :erlang.nif_error(:not_loaded)
  def metrics_clear_handlers(_handle), do: :erlang.nif_error(:not_loaded)

  # json (Events.GracefulDegradation fallback)
  def json_encode(_term), do: :erlang.nif_error(:not_loaded)
  def json_decode(_binary), do: :erlang.nif_error(:not_loaded)

  # fallback (store_safe buffer)
  def fallback_push(_term), do: :erlang.nif_error(:not_loaded)
  def fallback_list, do: :erlang.nif_error(:not_loaded)
  def fallback_take, do: :erlang.nif_error(:not_loaded)

  # serialize (EventLogic.serialize_event: big events on a dirty scheduler)
  def serialize_small(_term, _compressed), do: :erlang.nif_error(:not_loaded)
  def serialize_dirty(_term, _compressed), do: :erlang.nif_error(:not_loaded)
  # term size (ElixirScope.Foundation.TermSize)
  def term_size_small(_term), do: :erlang.nif_error(:not_loaded)
  def term_size_exact(_term), do: :erlang.nif_error(:not_loaded)

  # deserialize (EventLogic.deserialize_event: big binaries on a dirty scheduler)
  def deserialize_dirty(_binary), do: :erlang.nif_error(:not_loaded)

  # warm storage (the event store's disk tier; dirty I/O schedulers)
  def warm_open(_path, _max_bytes, _compression, _fsync_ms), do: :erlang.nif_error(:not_loaded)
  def warm_put(_store, _warm, _event, _offset, _tag), do: :erlang.nif_error(:not_loaded)
  def warm_put_dirty(_store, _warm, _event, _offset, _tag), do: :erlang.nif_error(:not_loaded)
  def warm_put_batch(_store, _warm, _events, _offset, _tag), do: :erlang.nif_error(:not_loaded)

  def warm_put_batch_dirty(_store, _warm, _events, _offset, _tag),
    do: :erlang.nif_error(:not_loaded)

  def warm_get(_warm, _id), do: :erlang.nif_error(:not_loaded)

  def warm_query(_warm, _type, _sys_range, _order, _limit),
    do: :erlang.nif_error(:not_loaded)

  def warm_get_by_correlation(_warm, _cid), do: :erlang.nif_error(:not_loaded)
  def warm_prune_before(_warm, _sys_ts), do: :erlang.nif_error(:not_loaded)
  def warm_clear(_warm), do: :erlang.nif_error(:not_loaded)
  def warm_close(_warm), do: :erlang.nif_error(:not_loaded)
  def warm_stats(_warm), do: :erlang.nif_error(:not_loaded)
  def warm_floor(_warm), do: :erlang.nif_error(:not_loaded)
  def warm_take_corrupt(_warm), do: :erlang.nif_error(:not_loaded)
  # test builds only: the next n disk writes of a tier fail
  def warm_fail_writes(_warm, _n), do: :erlang.nif_error(:not_loaded)
  # test builds only: the tier's journal apply thread applies nothing while held
  def warm_hold_apply(_warm, _held), do: :erlang.nif_error(:not_loaded)
end
