//! The ConfigValidator's error values: the broken rule (with its exact
//! message) and the cases where the original raised.

use super::config::Section;

/// The error type (and so the code) a broken rule reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigKind {
    /// `:validation_failed`, code 1001.
    ValidationFailed,
    /// `:invalid_config_value`, code 1002.
    InvalidValue,
    /// `:constraint_violation`, code 1003.
    ConstraintViolation,
    /// `:range_error`, code 1004.
    RangeError,
}

/// One broken validator rule; `Display` is the exact contract message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ConfigRule {
    /// ai.provider not in `VALID_PROVIDERS` (context: provider, valid_providers).
    #[error("Invalid AI provider")]
    Provider,
    /// ai.analysis fields not all positive integers.
    #[error("Invalid AI analysis configuration")]
    Analysis,
    /// ai.planning lacks a field (or is not a map).
    #[error("Invalid AI planning configuration")]
    Planning,
    /// planning.performance_target not a number >= 0.
    #[error("Performance target must be a non-negative number")]
    PerformanceTarget,
    /// planning.sampling_rate not a number in [0, 1].
    #[error("Sampling rate must be between 0 and 1")]
    SamplingRate,
    /// planning.default_strategy not in `PLANNING_STRATEGIES`.
    #[error("Invalid planning strategy")]
    Strategy,
    /// ring_buffer.size / max_events not positive integers.
    #[error("Invalid ring buffer configuration")]
    RingBuffer,
    /// ring_buffer.overflow_strategy not in `OVERFLOW_STRATEGIES`.
    #[error("Invalid overflow strategy")]
    Overflow,
    /// processing fields not positive integers.
    #[error("Invalid processing configuration")]
    Processing,
    /// vm_tracing flags not booleans.
    #[error("Invalid VM tracing configuration")]
    VmTracing,
    /// storage.hot fields not positive integers.
    #[error("Invalid hot storage configuration")]
    Hot,
    /// storage.warm enabled without a binary path / positive max_size_mb.
    #[error("Invalid warm storage configuration")]
    Warm,
    /// storage.warm.compression not in `COMPRESSIONS`.
    #[error("Invalid compression type")]
    Compression,
    /// storage.cold.enable not exactly false.
    #[error("Invalid cold storage configuration")]
    Cold,
    /// interface fields wrong.
    #[error("Invalid interface configuration")]
    Interface,
    /// dev flags not booleans.
    #[error("Invalid development configuration")]
    Dev,
}

impl ConfigRule {
    /// The error type this rule reports.
    pub fn kind(self) -> ConfigKind {
        match self {
            ConfigRule::Provider
            | ConfigRule::Strategy
            | ConfigRule::Overflow
            | ConfigRule::Compression => ConfigKind::InvalidValue,
            ConfigRule::PerformanceTarget => ConfigKind::ConstraintViolation,
            ConfigRule::SamplingRate => ConfigKind::RangeError,
            _ => ConfigKind::ValidationFailed,
        }
    }
}

/// Why a configuration is rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A rule failed: returned as `{:error, %Types.Error{}}`.
    #[error("{0}")]
    Rule(ConfigRule),
    /// The section validator's function head would not match (not a map, or
    /// a required key absent): the original raised FunctionClauseError.
    #[error("{}", .0.name())]
    NoClause(Section),
    /// A key read with `map.key` was absent: the original raised KeyError.
    #[error("{0}")]
    MissingKey(&'static str),
}
