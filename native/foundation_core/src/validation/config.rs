//! ConfigValidator rules, run on a `Value` mirror of the
//! `%Types.Config{}` tree. Sections are checked ai -> capture -> storage ->
//! interface -> dev and the first failure wins.
//!
//! The original raised (FunctionClauseError / KeyError) for some missing
//! keys; those come back as `ConfigError::NoClause` / `ConfigError::MissingKey`
//! so the Elixir side can raise the same exception.

pub use super::config_error::{ConfigError, ConfigKind, ConfigRule};
pub use super::tree::{ConfigTree, Leaf};

/// AI providers the validator accepts (note `:gemini`, absent from the typespec).
pub const VALID_PROVIDERS: [&str; 4] = ["mock", "openai", "anthropic", "gemini"];
/// Accepted planning strategies.
pub const PLANNING_STRATEGIES: [&str; 3] = ["fast", "balanced", "thorough"];
/// Accepted ring buffer overflow strategies (`:block`, not `:error`).
pub const OVERFLOW_STRATEGIES: [&str; 3] = ["drop_oldest", "drop_newest", "block"];
/// Accepted warm storage compressions.
pub const COMPRESSIONS: [&str; 3] = ["none", "gzip", "zstd"];

/// A top-level configuration section, in check order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    /// `ai`
    Ai,
    /// `capture`
    Capture,
    /// `storage`
    Storage,
    /// `interface`
    Interface,
    /// `dev`
    Dev,
}

impl Section {
    /// All sections in the order `validate` checks them.
    pub const ALL: [Section; 5] = [
        Section::Ai,
        Section::Capture,
        Section::Storage,
        Section::Interface,
        Section::Dev,
    ];

    /// The section's key name.
    pub fn name(self) -> &'static str {
        match self {
            Section::Ai => "ai",
            Section::Capture => "capture",
            Section::Storage => "storage",
            Section::Interface => "interface",
            Section::Dev => "dev",
        }
    }

    /// Parses a section key name.
    pub fn from_name(name: &str) -> Option<Section> {
        Section::ALL.into_iter().find(|s| s.name() == name)
    }
}

type Check = Result<(), ConfigError>;

fn fail(rule: ConfigRule) -> Check {
    Err(ConfigError::Rule(rule))
}

/// Validates a whole configuration (the `%Config{}` map).
pub fn validate_config<T: ConfigTree>(config: T) -> Check {
    for section in Section::ALL {
        let value = config
            .get(section.name())
            .ok_or(ConfigError::MissingKey(section.name()))?;
        validate_section(section, value)?;
    }
    Ok(())
}

/// Validates one section's map, as `validate_<section>_config/1` does.
pub fn validate_section<T: ConfigTree>(section: Section, value: T) -> Check {
    match section {
        Section::Ai => validate_ai(value),
        Section::Capture => validate_capture(value),
        Section::Storage => validate_storage(value),
        Section::Interface => validate_interface(value),
        Section::Dev => validate_dev(value),
    }
}

fn is_pos_int(leaf: &Leaf) -> bool {
    matches!(leaf, Leaf::Int(i) if *i > 0) || matches!(leaf, Leaf::BigInt { negative: false })
}

fn pos_ints<T: ConfigTree>(map: T, keys: &[&str]) -> bool {
    keys.iter()
        .all(|k| map.get(k).is_some_and(|v| is_pos_int(&v.leaf())))
}

fn bools<T: ConfigTree>(map: T, keys: &[&str]) -> bool {
    keys.iter().all(|k| {
        map.get(k)
            .is_some_and(|v| matches!(v.leaf(), Leaf::Bool(_)))
    })
}

fn atom_in<T: ConfigTree>(value: Option<T>, allowed: &[&str]) -> bool {
    value.is_some_and(|v| matches!(v.leaf(), Leaf::Atom(a) if allowed.contains(&a.as_str())))
}

fn validate_ai<T: ConfigTree>(ai: T) -> Check {
    let provider = ai
        .get("provider")
        .ok_or(ConfigError::NoClause(Section::Ai))?;
    if !atom_in(Some(provider), &VALID_PROVIDERS) {
        return fail(ConfigRule::Provider);
    }
    let analysis = ai
        .get("analysis")
        .ok_or(ConfigError::MissingKey("analysis"))?;
    if !pos_ints(analysis, &["max_file_size", "timeout", "cache_ttl"]) {
        return fail(ConfigRule::Analysis);
    }
    let planning = ai
        .get("planning")
        .ok_or(ConfigError::MissingKey("planning"))?;
    validate_planning(planning)
}

fn validate_planning<T: ConfigTree>(planning: T) -> Check {
    let (Some(target), Some(rate), Some(strategy)) = (
        planning.get("performance_target"),
        planning.get("sampling_rate"),
        planning.get("default_strategy"),
    ) else {
        return fail(ConfigRule::Planning);
    };
    if !non_negative(&target.leaf()) {
        return fail(ConfigRule::PerformanceTarget);
    }
    if !unit_interval(&rate.leaf()) {
        return fail(ConfigRule::SamplingRate);
    }
    if !atom_in(Some(strategy), &PLANNING_STRATEGIES) {
        return fail(ConfigRule::Strategy);
    }
    Ok(())
}

/// A number >= 0 (`-0.0` counts, as `-0.0 >= 0` is true on the BEAM).
fn non_negative(v: &Leaf) -> bool {
    match v {
        Leaf::Int(i) => *i >= 0,
        Leaf::BigInt { negative } => !negative,
        Leaf::Float(f) => *f >= 0.0,
        _ => false,
    }
}

/// A number in [0, 1]; big integers never are.
fn unit_interval(v: &Leaf) -> bool {
    match v {
        Leaf::Int(i) => (0..=1).contains(i),
        Leaf::Float(f) => (0.0..=1.0).contains(f),
        _ => false,
    }
}

fn validate_capture<T: ConfigTree>(capture: T) -> Check {
    let fields = (
        capture.get("ring_buffer"),
        capture.get("processing"),
        capture.get("vm_tracing"),
    );
    let (Some(ring), Some(processing), Some(tracing)) = fields else {
        return Err(ConfigError::NoClause(Section::Capture));
    };
    if !pos_ints(ring, &["size", "max_events"]) {
        return fail(ConfigRule::RingBuffer);
    }
    if !atom_in(ring.get("overflow_strategy"), &OVERFLOW_STRATEGIES) {
        return fail(ConfigRule::Overflow);
    }
    if !pos_ints(
        processing,
        &["batch_size", "flush_interval", "max_queue_size"],
    ) {
        return fail(ConfigRule::Processing);
    }
    let flags = [
        "enable_spawn_trace",
        "enable_exit_trace",
        "enable_message_trace",
        "trace_children",
    ];
    if !bools(tracing, &flags) {
        return fail(ConfigRule::VmTracing);
    }
    Ok(())
}

fn validate_storage<T: ConfigTree>(storage: T) -> Check {
    let fields = (storage.get("hot"), storage.get("warm"), storage.get("cold"));
    let (Some(hot), Some(warm), Some(cold)) = fields else {
        return Err(ConfigError::NoClause(Section::Storage));
    };
    if !pos_ints(hot, &["max_events", "max_age_seconds", "prune_interval"]) {
        return fail(ConfigRule::Hot);
    }
    validate_warm(warm)?;
    match cold.get("enable").map(ConfigTree::leaf) {
        Some(Leaf::Bool(false)) => Ok(()),
        _ => fail(ConfigRule::Cold),
    }
}

fn validate_warm<T: ConfigTree>(warm: T) -> Check {
    match warm.get("enable").map(ConfigTree::leaf) {
        Some(Leaf::Bool(false)) => Ok(()),
        Some(Leaf::Bool(true)) => {
            let path_ok = warm.get("path").map(ConfigTree::leaf) == Some(Leaf::Binary);
            if !path_ok || !pos_ints(warm, &["max_size_mb"]) {
                return fail(ConfigRule::Warm);
            }
            if !atom_in(warm.get("compression"), &COMPRESSIONS) {
                return fail(ConfigRule::Compression);
            }
            Ok(())
        }
        _ => fail(ConfigRule::Warm),
    }
}

fn validate_interface<T: ConfigTree>(interface: T) -> Check {
    let ok = pos_ints(interface, &["query_timeout", "max_results"])
        && bools(interface, &["enable_streaming"]);
    if ok {
        Ok(())
    } else {
        fail(ConfigRule::Interface)
    }
}

fn validate_dev<T: ConfigTree>(dev: T) -> Check {
    if bools(
        dev,
        &["debug_mode", "verbose_logging", "performance_monitoring"],
    ) {
        Ok(())
    } else {
        fail(ConfigRule::Dev)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validation::testing::{default_config, remove, set};
    use crate::value::Value;

    fn rule(r: ConfigRule) -> Check {
        Err(ConfigError::Rule(r))
    }

    #[test]
    fn default_config_is_valid() {
        assert_eq!(validate_config(&default_config()), Ok(()));
    }

    #[test]
    fn provider_and_planning_rules() {
        let c = default_config();
        let bad = set(&c, &["ai", "provider"], Value::Atom("bogus".into()));
        assert_eq!(validate_config(&bad), rule(ConfigRule::Provider));
        let gem = set(&c, &["ai", "provider"], Value::Atom("gemini".into()));
        assert_eq!(validate_config(&gem), Ok(()));
        for rate in [1.5, 2.0, 5.0, -0.1] {
            let bad = set(&c, &["ai", "planning", "sampling_rate"], Value::Float(rate));
            assert_eq!(validate_config(&bad), rule(ConfigRule::SamplingRate));
        }
        for rate in [
            Value::Float(0.0),
            Value::Float(1.0),
            Value::Int(0),
            Value::Int(1),
        ] {
            let ok = set(&c, &["ai", "planning", "sampling_rate"], rate);
            assert_eq!(validate_config(&ok), Ok(()));
        }
        let neg = set(
            &c,
            &["ai", "planning", "performance_target"],
            Value::Int(-1),
        );
        assert_eq!(validate_config(&neg), rule(ConfigRule::PerformanceTarget));
    }

    #[test]
    fn missing_keys_map_to_raises() {
        let c = default_config();
        let ai = c.get("ai").cloned().unwrap_or(Value::Nil);
        assert_eq!(
            validate_section(Section::Ai, &remove(&ai, &[], "provider")),
            Err(ConfigError::NoClause(Section::Ai))
        );
        assert_eq!(
            validate_section(Section::Ai, &remove(&ai, &[], "analysis")),
            Err(ConfigError::MissingKey("analysis"))
        );
        assert_eq!(
            validate_config(&remove(&c, &[], "dev")),
            Err(ConfigError::MissingKey("dev"))
        );
        assert_eq!(
            validate_section(Section::Storage, &Value::Int(1)),
            Err(ConfigError::NoClause(Section::Storage))
        );
    }

    #[test]
    fn warm_and_cold_rules() {
        let c = default_config();
        let warm_on = set(&c, &["storage", "warm", "enable"], Value::Bool(true));
        assert_eq!(validate_config(&warm_on), Ok(()));
        let bad_comp = set(
            &warm_on,
            &["storage", "warm", "compression"],
            Value::Atom("lz4".into()),
        );
        assert_eq!(validate_config(&bad_comp), rule(ConfigRule::Compression));
        let bad_path = set(
            &warm_on,
            &["storage", "warm", "path"],
            Value::Atom("p".into()),
        );
        assert_eq!(validate_config(&bad_path), rule(ConfigRule::Warm));
        let cold = set(&c, &["storage", "cold", "enable"], Value::Bool(true));
        assert_eq!(validate_config(&cold), rule(ConfigRule::Cold));
    }

    #[test]
    fn first_failure_wins() {
        let c = default_config();
        let two = set(&c, &["dev", "debug_mode"], Value::Int(1));
        let two = set(&two, &["capture", "ring_buffer", "size"], Value::Int(-1));
        assert_eq!(validate_config(&two), rule(ConfigRule::RingBuffer));
        assert_eq!(
            ConfigRule::SamplingRate.to_string(),
            "Sampling rate must be between 0 and 1"
        );
    }
}
