//! Term -> `foundation_core::Value`, bounded in depth so hostile input
//! (100k nested levels) becomes an error value, never a stack overflow.

use foundation_core::value::OpaqueKind;
use foundation_core::{CoreError, Value};
use rustler::types::tuple::get_tuple;
use rustler::{Binary, Encoder, TermType};
use rustler::{MapIterator, Term};

/// Deepest nesting `to_value` accepts. `convert` recurses once per level, and a
/// dirty scheduler's stack (40 kilowords by default) overflows at about 600
/// levels: keep a wide margin.
pub const MAX_DEPTH: usize = 100;

/// Converts a term into a core value.
pub fn to_value(term: Term) -> Result<Value, CoreError> {
    convert(term, 0)
}

fn convert(term: Term, depth: usize) -> Result<Value, CoreError> {
    if depth > MAX_DEPTH {
        return Err(CoreError::InvalidInput(format!(
            "term nested deeper than {MAX_DEPTH} levels"
        )));
    }
    let value = match term.get_type() {
        TermType::Atom => atom_value(term)?,
        TermType::Integer => match term.decode::<i64>() {
            Ok(i) => Value::Int(i),
            Err(_) => Value::BigInt(big_int_text(term)),
        },
        TermType::Float => Value::Float(term.decode::<f64>().map_err(bad("float"))?),
        TermType::Binary => match Binary::from_term(term) {
            Ok(bin) => Value::Binary(bin.as_slice().to_vec()),
            Err(_) => Value::Opaque(OpaqueKind::Other, "bitstring".into()),
        },
        TermType::List => list_value(term, depth)?,
        TermType::Tuple => {
            let items = get_tuple(term).map_err(bad("tuple"))?;
            let values: Result<Vec<_>, _> = items.iter().map(|t| convert(*t, depth + 1)).collect();
            Value::Tuple(values?)
        }
        TermType::Map => map_value(term, depth)?,
        TermType::Pid => Value::Opaque(OpaqueKind::Pid, "#PID".into()),
        TermType::Ref => Value::Opaque(OpaqueKind::Ref, "#Reference".into()),
        TermType::Port => Value::Opaque(OpaqueKind::Port, "#Port".into()),
        TermType::Fun => Value::Opaque(OpaqueKind::Fun, "#Function".into()),
        TermType::Unknown => Value::Opaque(OpaqueKind::Other, "unknown".into()),
    };
    Ok(value)
}

fn atom_value(term: Term) -> Result<Value, CoreError> {
    let name = term.atom_to_string().map_err(bad("atom"))?;
    Ok(match name.as_str() {
        "nil" => Value::Nil,
        "true" => Value::Bool(true),
        "false" => Value::Bool(false),
        _ => Value::Atom(name),
    })
}

fn list_value(term: Term, depth: usize) -> Result<Value, CoreError> {
    let mut items = Vec::new();
    let mut rest = term;
    while !rest.is_empty_list() {
        match rest.list_get_cell() {
            Ok((head, tail)) => {
                items.push(convert(head, depth + 1)?);
                rest = tail;
            }
            Err(_) => {
                return Err(CoreError::InvalidInput("improper list".into()));
            }
        }
    }
    Ok(Value::List(items))
}

fn map_value(term: Term, depth: usize) -> Result<Value, CoreError> {
    let iter = MapIterator::new(term).ok_or_else(|| CoreError::InvalidInput("map".into()))?;
    let mut pairs = Vec::new();
    for (k, v) in iter {
        pairs.push((convert(k, depth + 1)?, convert(v, depth + 1)?));
    }
    Ok(Value::Map(pairs))
}

/// Integers beyond i128 keep only their sign: the core never needs more.
fn big_int_text(term: Term) -> String {
    match term.decode::<i128>() {
        Ok(big) => big.to_string(),
        Err(_) if term < 0.encode(term.get_env()) => "-huge".into(),
        Err(_) => "huge".into(),
    }
}

fn bad(what: &'static str) -> impl Fn(rustler::Error) -> CoreError {
    move |_| CoreError::InvalidInput(format!("cannot decode {what}"))
}
