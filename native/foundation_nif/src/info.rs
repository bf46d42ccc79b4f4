//! Library information NIFs.

/// Version of the Rust core, to check the loaded library matches the build.
#[rustler::nif]
fn native_version() -> &'static str {
    foundation_core::VERSION
}
