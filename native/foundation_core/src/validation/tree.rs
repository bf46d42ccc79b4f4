//! Read access to a configuration tree for the ConfigValidator rules: the
//! rules only name keys and inspect leaves, so they run on a `Value` (tests)
//! or directly on terms (the NIF) without copying the tree.

use crate::value::Value;

/// What a configuration leaf is, as far as the rules care.
#[derive(Debug, Clone, PartialEq)]
pub enum Leaf {
    /// `nil`
    Nil,
    /// `true` / `false`
    Bool(bool),
    /// Any other atom, by name.
    Atom(String),
    /// An integer that fits in 64 bits.
    Int(i64),
    /// A larger integer, by sign.
    BigInt {
        /// True below zero.
        negative: bool,
    },
    /// A float.
    Float(f64),
    /// A binary.
    Binary,
    /// Anything else (maps, lists, pids, ...).
    Other,
}

/// Read access to a configuration tree: implemented for `&Value` here and
/// directly over terms in the NIF crate, so validating never copies the tree.
pub trait ConfigTree: Sized + Copy {
    /// The child under atom key `key` when `self` is a map holding it.
    fn get(self, key: &str) -> Option<Self>;
    /// The node's kind.
    fn leaf(self) -> Leaf;
}

impl ConfigTree for &Value {
    fn get(self, key: &str) -> Option<Self> {
        Value::get(self, key)
    }

    fn leaf(self) -> Leaf {
        match self {
            Value::Nil => Leaf::Nil,
            Value::Bool(b) => Leaf::Bool(*b),
            Value::Atom(a) => Leaf::Atom(a.clone()),
            Value::Int(i) => Leaf::Int(*i),
            Value::BigInt(s) => Leaf::BigInt {
                negative: s.starts_with('-'),
            },
            Value::Float(f) => Leaf::Float(*f),
            Value::Binary(_) => Leaf::Binary,
            _ => Leaf::Other,
        }
    }
}
