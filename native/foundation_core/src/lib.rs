//! Pure Rust core of the ElixirScope Foundation.
//!
//! Nothing in this crate knows about the BEAM: it takes and returns plain Rust
//! values. `foundation_nif` converts terms to these types and back.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod error;
pub mod etf;
pub mod fallback;
pub mod json;
pub mod metrics;
pub mod store;
pub mod validation;
pub mod value;

pub use error::{CoreError, CoreResult};
pub use value::Value;

/// Version of the core crate, reported by `Native.native_version/0`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
