//! Property tests: random configs and events against a table-driven model of
//! the ConfigValidator/EventValidator rules (written independently of the validators).

use foundation_core::validation::config::{validate_config, ConfigError, ConfigRule};
use foundation_core::validation::event::{self, EventFields, EventRule, Field, MAX_DATA_SIZE};
use foundation_core::validation::testing::{default_config, set};
use foundation_core::Value;
use proptest::prelude::*;

/// Every leaf the rules read, with the leaf's rule.
const LEAVES: &[(&[&str], ConfigRule)] = &[
    (&["ai", "provider"], ConfigRule::Provider),
    (&["ai", "analysis", "max_file_size"], ConfigRule::Analysis),
    (&["ai", "analysis", "timeout"], ConfigRule::Analysis),
    (&["ai", "analysis", "cache_ttl"], ConfigRule::Analysis),
    (
        &["ai", "planning", "performance_target"],
        ConfigRule::PerformanceTarget,
    ),
    (
        &["ai", "planning", "sampling_rate"],
        ConfigRule::SamplingRate,
    ),
    (
        &["ai", "planning", "default_strategy"],
        ConfigRule::Strategy,
    ),
    (&["capture", "ring_buffer", "size"], ConfigRule::RingBuffer),
    (
        &["capture", "ring_buffer", "max_events"],
        ConfigRule::RingBuffer,
    ),
    (
        &["capture", "ring_buffer", "overflow_strategy"],
        ConfigRule::Overflow,
    ),
    (
        &["capture", "processing", "batch_size"],
        ConfigRule::Processing,
    ),
    (
        &["capture", "processing", "flush_interval"],
        ConfigRule::Processing,
    ),
    (
        &["capture", "processing", "max_queue_size"],
        ConfigRule::Processing,
    ),
    (
        &["capture", "vm_tracing", "enable_spawn_trace"],
        ConfigRule::VmTracing,
    ),
    (
        &["capture", "vm_tracing", "enable_exit_trace"],
        ConfigRule::VmTracing,
    ),
    (
        &["capture", "vm_tracing", "enable_message_trace"],
        ConfigRule::VmTracing,
    ),
    (
        &["capture", "vm_tracing", "trace_children"],
        ConfigRule::VmTracing,
    ),
    (&["storage", "hot", "max_events"], ConfigRule::Hot),
    (&["storage", "hot", "max_age_seconds"], ConfigRule::Hot),
    (&["storage", "hot", "prune_interval"], ConfigRule::Hot),
    (&["storage", "warm", "enable"], ConfigRule::Warm),
    (&["storage", "warm", "path"], ConfigRule::Warm),
    (&["storage", "warm", "max_size_mb"], ConfigRule::Warm),
    (&["storage", "warm", "compression"], ConfigRule::Compression),
    (&["storage", "cold", "enable"], ConfigRule::Cold),
    (&["interface", "query_timeout"], ConfigRule::Interface),
    (&["interface", "max_results"], ConfigRule::Interface),
    (&["interface", "enable_streaming"], ConfigRule::Interface),
    (&["dev", "debug_mode"], ConfigRule::Dev),
    (&["dev", "verbose_logging"], ConfigRule::Dev),
    (&["dev", "performance_monitoring"], ConfigRule::Dev),
];

fn is_atom_in(v: &Value, set: &[&str]) -> bool {
    matches!(v, Value::Atom(a) if set.contains(&a.as_str()))
}

/// Whether one leaf value satisfies its rule, ignoring the warm switch.
fn leaf_ok(path: &[&str], v: &Value) -> bool {
    let last = path.last().copied().unwrap_or("");
    match last {
        "provider" => is_atom_in(v, &["mock", "openai", "anthropic", "gemini"]),
        "performance_target" => {
            matches!(v, Value::Int(i) if *i >= 0)
                || matches!(v, Value::Float(f) if *f >= 0.0)
                || big_positive(v)
        }
        "sampling_rate" => {
            matches!(v, Value::Int(0) | Value::Int(1))
                || matches!(v, Value::Float(f) if (0.0..=1.0).contains(f))
        }
        "default_strategy" => is_atom_in(v, &["fast", "balanced", "thorough"]),
        "overflow_strategy" => is_atom_in(v, &["drop_oldest", "drop_newest", "block"]),
        "compression" => is_atom_in(v, &["none", "gzip", "zstd"]),
        "path" => matches!(v, Value::Binary(_)),
        "enable" if path.get(1) == Some(&"cold") => *v == Value::Bool(false),
        "enable" => matches!(v, Value::Bool(_)),
        s if s.starts_with("enable_") || s.ends_with("_mode") => matches!(v, Value::Bool(_)),
        "trace_children" | "verbose_logging" | "performance_monitoring" => {
            matches!(v, Value::Bool(_))
        }
        _ => matches!(v, Value::Int(i) if *i > 0) || big_positive(v),
    }
}

/// Integers beyond 64 bits are still integers on the BEAM.
fn big_positive(v: &Value) -> bool {
    matches!(v, Value::BigInt(s) if !s.starts_with('-'))
}

fn model(values: &[Value]) -> Result<(), ConfigRule> {
    let warm_on = values.get(20) == Some(&Value::Bool(true));
    for (i, ((path, rule), v)) in LEAVES.iter().zip(values).enumerate() {
        let warm_detail = (21..=23).contains(&i);
        if warm_detail && !warm_on {
            continue;
        }
        if !leaf_ok(path, v) {
            return Err(*rule);
        }
    }
    Ok(())
}

fn any_value() -> impl Strategy<Value = Value> {
    let atoms = [
        "mock", "gemini", "bogus", "fast", "block", "error", "zstd", "lz4", "true",
    ];
    prop_oneof![
        (-3i64..4).prop_map(Value::Int),
        (-1.5f64..2.5).prop_map(Value::Float),
        any::<bool>().prop_map(Value::Bool),
        proptest::sample::select(atoms.to_vec()).prop_map(|a| Value::Atom(a.to_string())),
        Just(Value::Nil),
        Just(Value::Binary(b"p".to_vec())),
    ]
}

/// Each leaf keeps its default (valid) value with probability ~2/3.
fn leaf_values() -> impl Strategy<Value = Vec<Option<Value>>> {
    proptest::collection::vec(proptest::option::weighted(0.3, any_value()), LEAVES.len())
}

/// Boundary and set-membership values for every rule (valid and invalid).
fn interesting() -> Vec<Value> {
    let atoms = [
        "mock",
        "openai",
        "anthropic",
        "gemini",
        "bogus",
        "fast",
        "balanced",
        "thorough",
        "drop_oldest",
        "drop_newest",
        "block",
        "error",
        "none",
        "gzip",
        "zstd",
        "lz4",
    ];
    let mut values: Vec<Value> = atoms.iter().map(|a| Value::Atom(a.to_string())).collect();
    values.extend([-1, 0, 1, 2, i64::MAX].map(Value::Int));
    values.extend([-0.0, 0.0, 1.0, 1.000_000_1, -1e-9, 1e308].map(Value::Float));
    values.extend([Value::Bool(true), Value::Bool(false), Value::Nil]);
    values.push(Value::BigInt("123456789012345678901234567890".into()));
    values.push(Value::BigInt("-123456789012345678901234567890".into()));
    values.push(Value::Binary(b"./data".to_vec()));
    values
}

fn mutation() -> impl Strategy<Value = (usize, Value)> {
    (0..LEAVES.len(), proptest::sample::select(interesting()))
}

fn check_against_model(mutations: &[(usize, Value)]) -> Result<(), TestCaseError> {
    let mut config = default_config();
    let mut values: Vec<Value> = LEAVES
        .iter()
        .map(|(path, _)| {
            path.iter()
                .try_fold(&config, |v, k| v.get(k))
                .cloned()
                .unwrap_or(Value::Nil)
        })
        .collect();
    for (leaf, value) in mutations {
        config = set(&config, LEAVES[*leaf].0, value.clone());
        values[*leaf] = value.clone();
    }
    prop_assert_eq!(
        validate_config(&config),
        model(&values).map_err(ConfigError::Rule)
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    #[test]
    fn one_or_two_boundary_mutations_match_model(a in mutation(), b in proptest::option::of(mutation())) {
        let mut mutations = vec![a];
        mutations.extend(b);
        check_against_model(&mutations)?;
    }
}

proptest! {
    #[test]
    fn config_validator_matches_model(choices in leaf_values()) {
        let mut config = default_config();
        let mut values = Vec::new();
        for ((path, _), choice) in LEAVES.iter().zip(choices) {
            let current = path.iter().try_fold(&config, |v, k| v.get(k)).cloned();
            let value = choice.unwrap_or(current.unwrap_or(Value::Nil));
            config = set(&config, path, value.clone());
            values.push(value);
        }
        let expected = model(&values).map_err(ConfigError::Rule);
        prop_assert_eq!(validate_config(&config), expected);
    }

    #[test]
    fn sampling_rate_boundaries(rate in -2.0f64..3.0) {
        let config = set(&default_config(), &["ai", "planning", "sampling_rate"], Value::Float(rate));
        let ok = (0.0..=1.0).contains(&rate);
        prop_assert_eq!(validate_config(&config).is_ok(), ok);
    }

    #[test]
    fn event_validator_matches_model(fields in proptest::collection::vec(0usize..9, 8), size in 999_990u64..1_000_010) {
        let all = [Field::Nil, Field::False, Field::PosInt, Field::NonPosInt, Field::Atom,
                   Field::Binary, Field::Pid, Field::DateTime, Field::Other];
        let f: Vec<Field> = fields.iter().map(|i| all[*i]).collect();
        let ev = EventFields { event_id: f[0], event_type: f[1], timestamp: f[2], wall_time: f[3],
                               node: f[4], pid: f[5], correlation_id: f[6], parent_id: f[7] };
        prop_assert_eq!(event::validate_event(&ev, size), event_model(&f, size));
    }
}

fn event_model(f: &[Field], size: u64) -> Result<(), EventRule> {
    let nil_rules = [
        EventRule::IdNil,
        EventRule::TypeNil,
        EventRule::TimestampNil,
    ];
    for (field, rule) in f.iter().zip(nil_rules) {
        if *field == Field::Nil {
            return Err(rule);
        }
    }
    let wanted: [(&[Field], EventRule); 8] = [
        (&[Field::PosInt], EventRule::IdType),
        (&[Field::Atom], EventRule::TypeType),
        (&[Field::PosInt, Field::NonPosInt], EventRule::TimestampType),
        (&[Field::DateTime], EventRule::WallTimeType),
        (&[Field::Atom], EventRule::NodeType),
        (&[Field::Pid], EventRule::PidType),
        (&[Field::Binary], EventRule::CorrelationType),
        (&[Field::PosInt], EventRule::ParentType),
    ];
    for (field, (ok, rule)) in f.iter().zip(wanted) {
        let falsy = matches!(field, Field::Nil | Field::False);
        if !falsy && !ok.contains(field) {
            return Err(rule);
        }
    }
    if size > MAX_DATA_SIZE {
        Err(EventRule::DataTooLarge)
    } else {
        Ok(())
    }
}

#[test]
fn event_type_list_is_exact() {
    for name in event::ALLOWED_EVENT_TYPES {
        assert_eq!(event::validate_event_type(Some(name)), Ok(()));
    }
    assert_eq!(event::ALLOWED_EVENT_TYPES.len(), 22);
    assert_eq!(
        event::validate_event_type(Some("nil")),
        Err(EventRule::InvalidType)
    );
}
