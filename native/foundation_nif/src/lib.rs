//! rustler bindings of `foundation_core`. Each NIF decodes its arguments,
//! makes one core call and encodes the result; no business rules live here.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod alloc;
mod atoms;
mod decode;
mod error;
mod fallback;
mod info;
mod json;
mod metrics;
mod store;
mod store_codec;
mod store_datetime;
mod validation;

rustler::init!("Elixir.ElixirScope.Foundation.Native");
