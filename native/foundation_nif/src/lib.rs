//! rustler bindings of `foundation_core`. Each NIF decodes its arguments,
//! makes one core call and encodes the result; no business rules live here.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod alloc;
mod atoms;
mod audit;
mod budget;
mod clock;
mod decode;
mod deserialize;
mod disk_body;
mod error;
mod etf_write;
mod fallback;
mod flatmap;
mod info;
mod json;
mod metrics;
mod metrics_handle;
mod metrics_hot;
mod serialize;
mod store;
mod store_codec;
mod store_slice;
mod store_subs;
mod store_term;
mod store_term_read;
mod term_size;
mod validation;
mod walk;
mod warm;

rustler::init!("Elixir.ElixirScope.Foundation.Native", load = on_load);

/// The load info is the VM's native time unit (see `clock`); `metrics`
/// remembers the word of `[]`; the small-map and list cell layouts are
/// checked (see `flatmap`, `walk`); the stores' background thread is started
/// (before any store exists); the metric store's resource type is opened.
fn on_load(env: rustler::Env, load_info: rustler::Term) -> bool {
    clock::set_native_unit(load_info);
    foundation_core::store::background::start();
    metrics::set_nil(env);
    flatmap::calibrate(env);
    walk::calibrate(env);
    metrics_handle::open(env)
}
