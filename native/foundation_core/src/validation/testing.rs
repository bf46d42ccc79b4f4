//! Fixtures shared by the unit tests and the proptest suites: the default
//! `%Types.Config{}` tree as a `Value`, and a path setter.

use crate::value::Value;

fn atom(name: &str) -> Value {
    Value::Atom(name.to_string())
}

fn map(pairs: Vec<(&str, Value)>) -> Value {
    Value::Map(pairs.into_iter().map(|(k, v)| (atom(k), v)).collect())
}

/// The default configuration (`%Types.Config{}` defaults) as a value.
pub fn default_config() -> Value {
    map(vec![
        (
            "__struct__",
            atom("Elixir.ElixirScope.Foundation.Types.Config"),
        ),
        ("ai", default_ai()),
        ("capture", default_capture()),
        ("storage", default_storage()),
        (
            "interface",
            map(vec![
                ("query_timeout", Value::Int(10_000)),
                ("max_results", Value::Int(1000)),
                ("enable_streaming", Value::Bool(true)),
            ]),
        ),
        (
            "dev",
            map(vec![
                ("debug_mode", Value::Bool(false)),
                ("verbose_logging", Value::Bool(false)),
                ("performance_monitoring", Value::Bool(true)),
            ]),
        ),
    ])
}

fn default_ai() -> Value {
    map(vec![
        ("provider", atom("mock")),
        ("api_key", Value::Nil),
        ("model", Value::Binary(b"gpt-4".to_vec())),
        (
            "analysis",
            map(vec![
                ("max_file_size", Value::Int(1_000_000)),
                ("timeout", Value::Int(30_000)),
                ("cache_ttl", Value::Int(3600)),
            ]),
        ),
        (
            "planning",
            map(vec![
                ("default_strategy", atom("balanced")),
                ("performance_target", Value::Float(0.01)),
                ("sampling_rate", Value::Float(1.0)),
            ]),
        ),
    ])
}

fn default_capture() -> Value {
    map(vec![
        (
            "ring_buffer",
            map(vec![
                ("size", Value::Int(1024)),
                ("max_events", Value::Int(1000)),
                ("overflow_strategy", atom("drop_oldest")),
                ("num_buffers", atom("schedulers")),
            ]),
        ),
        (
            "processing",
            map(vec![
                ("batch_size", Value::Int(100)),
                ("flush_interval", Value::Int(50)),
                ("max_queue_size", Value::Int(1000)),
            ]),
        ),
        (
            "vm_tracing",
            map(vec![
                ("enable_spawn_trace", Value::Bool(true)),
                ("enable_exit_trace", Value::Bool(true)),
                ("enable_message_trace", Value::Bool(false)),
                ("trace_children", Value::Bool(true)),
            ]),
        ),
    ])
}

fn default_storage() -> Value {
    map(vec![
        (
            "hot",
            map(vec![
                ("max_events", Value::Int(100_000)),
                ("max_age_seconds", Value::Int(3600)),
                ("prune_interval", Value::Int(60_000)),
            ]),
        ),
        (
            "warm",
            map(vec![
                ("enable", Value::Bool(false)),
                ("path", Value::Binary(b"./elixir_scope_data".to_vec())),
                ("max_size_mb", Value::Int(100)),
                ("compression", atom("zstd")),
            ]),
        ),
        ("cold", map(vec![("enable", Value::Bool(false))])),
    ])
}

/// Returns `value` with the atom-key `path` set to `new` (missing keys are
/// added, non-map intermediates replaced by maps).
pub fn set(value: &Value, path: &[&str], new: Value) -> Value {
    let Some((first, rest)) = path.split_first() else {
        return new;
    };
    let mut pairs = match value {
        Value::Map(pairs) => pairs.clone(),
        _ => Vec::new(),
    };
    let child = value.get(first).cloned().unwrap_or(Value::Map(Vec::new()));
    let updated = set(&child, rest, new);
    match pairs.iter_mut().find(|(k, _)| k.as_atom() == Some(first)) {
        Some(pair) => pair.1 = updated,
        None => pairs.push((atom(first), updated)),
    }
    Value::Map(pairs)
}

/// Returns `value` with the atom key `key` removed from the map at `path`.
pub fn remove(value: &Value, path: &[&str], key: &str) -> Value {
    let Some((first, rest)) = path.split_first() else {
        return match value {
            Value::Map(pairs) => Value::Map(
                pairs
                    .iter()
                    .filter(|(k, _)| k.as_atom() != Some(key))
                    .cloned()
                    .collect(),
            ),
            other => other.clone(),
        };
    };
    match value.get(first) {
        Some(child) => set(value, &[first], remove(child, rest, key)),
        None => value.clone(),
    }
}
