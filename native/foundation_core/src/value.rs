//! A plain-data mirror of an Erlang term, used where the core must inspect
//! caller data (config trees, event fields, JSON fallback).

/// An Erlang term reduced to what the core can reason about. Atoms are kept
/// as their names: the core never creates atoms.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// The atom `nil`.
    Nil,
    /// The atoms `true` / `false`.
    Bool(bool),
    /// Any other atom, by name.
    Atom(String),
    /// An integer that fits in 64 bits.
    Int(i64),
    /// An integer outside the 64-bit range (kept as decimal text).
    BigInt(String),
    /// A float.
    Float(f64),
    /// A binary (not necessarily UTF-8).
    Binary(Vec<u8>),
    /// A proper list.
    List(Vec<Value>),
    /// A tuple.
    Tuple(Vec<Value>),
    /// A map, as key/value pairs in term order.
    Map(Vec<(Value, Value)>),
    /// A term the core treats as opaque (pid, reference, port, fun), with its
    /// printed form.
    Opaque(OpaqueKind, String),
}

/// The opaque term kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpaqueKind {
    /// A process identifier.
    Pid,
    /// A reference.
    Ref,
    /// A port.
    Port,
    /// A fun.
    Fun,
    /// Anything else (improper list tail, bitstring).
    Other,
}

impl Value {
    /// Looks up an atom key in a map value.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Map(pairs) => pairs.iter().find_map(|(k, v)| match k {
                Value::Atom(name) if name == key => Some(v),
                Value::Nil if key == "nil" => Some(v),
                Value::Bool(b) if key == if *b { "true" } else { "false" } => Some(v),
                _ => None,
            }),
            _ => None,
        }
    }

    /// The atom name if this value is an atom (including nil/true/false).
    pub fn as_atom(&self) -> Option<&str> {
        match self {
            Value::Atom(name) => Some(name),
            Value::Nil => Some("nil"),
            Value::Bool(true) => Some("true"),
            Value::Bool(false) => Some("false"),
            _ => None,
        }
    }

    /// True for a positive integer (including big ones).
    pub fn is_pos_int(&self) -> bool {
        match self {
            Value::Int(i) => *i > 0,
            Value::BigInt(s) => !s.starts_with('-'),
            _ => false,
        }
    }

    /// True for any integer.
    pub fn is_int(&self) -> bool {
        matches!(self, Value::Int(_) | Value::BigInt(_))
    }

    /// The numeric value of an integer or float, if any.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Int(i) => Some(*i as f64),
            Value::Float(f) => Some(*f),
            Value::BigInt(s) => s.parse().ok(),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_finds_atom_keys_only() {
        let m = Value::Map(vec![
            (Value::Atom("a".into()), Value::Int(1)),
            (Value::Binary(b"b".to_vec()), Value::Int(2)),
        ]);
        assert_eq!(m.get("a"), Some(&Value::Int(1)));
        assert_eq!(m.get("b"), None);
        assert_eq!(Value::Int(1).get("a"), None);
    }

    #[test]
    fn integer_predicates() {
        assert!(Value::Int(1).is_pos_int());
        assert!(!Value::Int(0).is_pos_int());
        assert!(Value::BigInt("123456789012345678901234".into()).is_pos_int());
        assert!(!Value::BigInt("-123456789012345678901234".into()).is_pos_int());
        assert!(!Value::Float(1.0).is_int());
    }
}
