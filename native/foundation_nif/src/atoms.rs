//! Every atom the NIF crate returns. Atoms are never made from runtime data.

rustler::atoms! {
    ok,
    error,
    nil,
    // error kinds (see `error.rs`; mapped to %Types.Error{} by Error.from_native/2)
    invalid_input,
    internal_error,
    queue_full,
    // store: event struct keys and stats keys
    event_struct = "Elixir.ElixirScope.Foundation.Types.Event",
    __struct__,
    event_type,
    event_id,
    timestamp,
    wall_time,
    node,
    pid,
    correlation_id,
    parent_id,
    data,
    current_event_count,
    events_stored,
    events_pruned,
    evicted_max_events,
    evicted_max_age,
    async_dropped,
    async_failed,
    async_queue_len,
}
