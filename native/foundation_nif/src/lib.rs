//! rustler bindings of `foundation_core`. Each NIF decodes its arguments,
//! makes one core call and encodes the result; no business rules live here.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod alloc;
mod atoms;
// `to_value` is shared by areas that land from other branches.
#[allow(dead_code)]
mod decode;
mod error;
mod fallback;
mod info;
mod json;
mod metrics;
mod store;
mod store_codec;
mod validation;

rustler::init!("Elixir.ElixirScope.Foundation.Native");
