//! Every atom the NIF crate returns. Atoms are never made from runtime data.

rustler::atoms! {
    ok,
    error,
    nil,
    // error kinds (see `error.rs`; mapped to %Types.Error{} by Error.from_native/2)
    invalid_input,
    internal_error,
    // validation (h2): error kinds
    config_validation_failed,
    invalid_config_value,
    invalid_ai_provider,
    constraint_violation,
    range_error,
    function_clause,
    key_error,
    validation_failed,
    type_mismatch,
    data_too_large,
    invalid_event_type,
    // validation (h2): event fields and struct tags
    event_id,
    event_type,
    timestamp,
    wall_time,
    node,
    pid,
    correlation_id,
    parent_id,
    struct_key = "__struct__",
    date_time = "Elixir.DateTime",
    valid_providers,
    allowed_event_types,
    max_data_size,
}
