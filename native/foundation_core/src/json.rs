//! JSON fallback of the event serializer (Events.GracefulDegradation):
//! `Value` -> JSON text, and JSON text -> `JsonValue` (serde_json).
//!
//! Encoding never fails on a `Value`: terms JSON cannot express are mapped
//! to the closest JSON (tuples -> arrays, atoms and opaque terms -> strings,
//! map keys -> strings, integers beyond 64 bits -> decimal strings, binaries
//! that are not UTF-8 -> lossy strings).

use crate::{CoreError, CoreResult, Value};
use serde_json::{Map, Number};

/// The parsed JSON tree returned by `decode`.
pub use serde_json::Value as JsonValue;

/// Encodes `value` as compact JSON text.
pub fn encode(value: &Value) -> CoreResult<String> {
    serde_json::to_string(&to_json(value))
        .map_err(|e| CoreError::InvalidInput(format!("JSON encoding failed: {e}")))
}

/// Parses JSON text (nesting limited to serde_json's 128 levels).
pub fn decode(text: &[u8]) -> CoreResult<JsonValue> {
    serde_json::from_slice(text).map_err(|e| CoreError::InvalidInput(format!("invalid JSON: {e}")))
}

fn to_json(value: &Value) -> JsonValue {
    match value {
        Value::Nil => JsonValue::Null,
        Value::Bool(b) => JsonValue::Bool(*b),
        Value::Int(i) => JsonValue::Number(Number::from(*i)),
        Value::Float(f) => Number::from_f64(*f).map_or(JsonValue::Null, JsonValue::Number),
        Value::List(items) | Value::Tuple(items) => {
            JsonValue::Array(items.iter().map(to_json).collect())
        }
        Value::Map(pairs) => {
            let object: Map<String, JsonValue> = pairs
                .iter()
                .map(|(k, v)| (key_text(k), to_json(v)))
                .collect();
            JsonValue::Object(object)
        }
        other => JsonValue::String(key_text(other)),
    }
}

/// Text of a term used as a string (map keys, atoms, opaque terms).
fn key_text(value: &Value) -> String {
    match value {
        Value::Nil => "nil".into(),
        Value::Bool(b) => b.to_string(),
        Value::Atom(name) => name.clone(),
        Value::Int(i) => i.to_string(),
        Value::BigInt(text) => text.clone(),
        Value::Float(f) => f.to_string(),
        Value::Binary(bytes) => String::from_utf8_lossy(bytes).into_owned(),
        Value::Opaque(_, text) => text.clone(),
        compound => to_json(compound).to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::OpaqueKind;

    fn atom(s: &str) -> Value {
        Value::Atom(s.into())
    }

    #[test]
    fn encodes_maps_lists_and_scalars() {
        let v = Value::Map(vec![
            (
                atom("a"),
                Value::List(vec![Value::Int(1), Value::Float(1.5)]),
            ),
            (
                Value::Binary(b"b".to_vec()),
                Value::Tuple(vec![Value::Nil, Value::Bool(true)]),
            ),
            (Value::Int(3), atom("x")),
        ]);
        assert_eq!(
            encode(&v).unwrap(),
            r#"{"3":"x","a":[1,1.5],"b":[null,true]}"#
        );
    }

    #[test]
    fn opaque_and_odd_terms_become_strings() {
        let v = Value::List(vec![
            Value::Opaque(OpaqueKind::Pid, "#PID<0.1.0>".into()),
            Value::BigInt("123456789012345678901234567890".into()),
            Value::Binary(vec![0xff, b'a']),
        ]);
        assert_eq!(
            encode(&v).unwrap(),
            "[\"#PID<0.1.0>\",\"123456789012345678901234567890\",\"\u{fffd}a\"]"
        );
    }

    #[test]
    fn compound_keys_are_printed_as_json() {
        let v = Value::Map(vec![(Value::Tuple(vec![Value::Int(1)]), Value::Int(2))]);
        assert_eq!(encode(&v).unwrap(), r#"{"[1]":2}"#);
    }

    #[test]
    fn decode_parses_and_rejects() {
        let parsed = decode(br#"{"a":[1,2.5,null,"s"]}"#).unwrap();
        assert_eq!(parsed["a"][1], JsonValue::from(2.5));
        assert!(matches!(decode(b"{nope"), Err(CoreError::InvalidInput(_))));
        let deep = "[".repeat(10_000);
        assert!(decode(deep.as_bytes()).is_err());
    }
}
