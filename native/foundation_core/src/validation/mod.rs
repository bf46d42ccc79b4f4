//! The ConfigValidator and EventValidator rules. The rules live here; the
//! Elixir modules only shape arguments and rebuild `%Types.Error{}`.

pub mod config;
pub mod config_error;
pub mod event;
#[cfg(any(test, feature = "test-support"))]
pub mod testing;
pub mod tree;

pub use config::{
    validate_config, validate_section, ConfigError, ConfigKind, ConfigRule, ConfigTree, Leaf,
    Section,
};
pub use event::{validate_event, EventFields, EventKind, EventRule, Field};
