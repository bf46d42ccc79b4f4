//! Every atom the NIF crate returns. Atoms are never made from runtime data.

rustler::atoms! {
    ok,
    error,
    nil,
    // metrics: measurement keys with merge rules of their own
    gauge,
    counter,
    // error kinds (see `error.rs`; mapped to %Types.Error{} by Error.from_native/2)
    invalid_input,
    internal_error,
}
