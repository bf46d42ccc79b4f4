//! JSON fallback NIFs (`json_*`) of Events.GracefulDegradation, built on
//! serde_json in the core. Decoding makes map keys atoms only when such an
//! atom already exists; other keys stay strings.

use crate::atoms;
use crate::decode::to_value;
use crate::error::NifError;
use foundation_core::json::{self, JsonValue};
use foundation_core::CoreError;
use rustler::types::tuple::get_tuple;
use rustler::{Atom, Binary, Encoder, Env, MapIterator, Term, TermType};

/// Deepest term `json_encode` accepts. Checked without recursion first: a
/// dirty scheduler's stack (40 kilowords by default) overflows long before
/// `to_value`'s own limit of 1000 levels is reached.
const MAX_JSON_DEPTH: usize = 100;

/// Encodes any term as JSON text (`{:ok, binary}`).
#[rustler::nif(schedule = "DirtyCpu")]
fn json_encode(term: Term) -> Result<String, NifError> {
    if !within_depth(term, MAX_JSON_DEPTH) {
        let detail = format!("term nested deeper than {MAX_JSON_DEPTH} levels");
        return Err(NifError(CoreError::InvalidInput(detail)));
    }
    let value = to_value(term)?;
    Ok(json::encode(&value)?)
}

/// True when lists, tuples and maps nest at most `max` levels deep.
/// Iterative (explicit stack of compound terms only), so any input is safe.
fn within_depth<'a>(term: Term<'a>, max: usize) -> bool {
    let mut stack = vec![(term, 0usize)];
    while let Some((t, depth)) = stack.pop() {
        if depth >= max {
            return false;
        }
        let mut push = |child: Term<'a>| {
            if matches!(
                child.get_type(),
                TermType::List | TermType::Tuple | TermType::Map
            ) {
                stack.push((child, depth + 1));
            }
        };
        match t.get_type() {
            TermType::List => {
                let mut rest = t;
                while let Ok((head, tail)) = rest.list_get_cell() {
                    push(head);
                    rest = tail;
                }
            }
            TermType::Tuple => get_tuple(t)
                .unwrap_or_default()
                .into_iter()
                .for_each(&mut push),
            TermType::Map => MapIterator::new(t)
                .into_iter()
                .flatten()
                .for_each(|(k, v)| {
                    push(k);
                    push(v);
                }),
            _ => {}
        }
    }
    true
}

/// Parses JSON text into maps, lists, binaries, numbers, booleans and nil.
#[rustler::nif(schedule = "DirtyCpu")]
fn json_decode<'a>(env: Env<'a>, text: Binary<'a>) -> Result<Term<'a>, NifError> {
    let parsed = json::decode(text.as_slice())?;
    Ok(to_term(env, &parsed)?)
}

fn to_term<'a>(env: Env<'a>, value: &JsonValue) -> Result<Term<'a>, CoreError> {
    Ok(match value {
        JsonValue::Null => atoms::nil().encode(env),
        JsonValue::Bool(b) => b.encode(env),
        JsonValue::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => i.encode(env),
            (None, Some(u)) => u.encode(env),
            _ => n.as_f64().unwrap_or(0.0).encode(env),
        },
        JsonValue::String(s) => s.encode(env),
        JsonValue::Array(items) => {
            let terms: Result<Vec<Term>, CoreError> =
                items.iter().map(|i| to_term(env, i)).collect();
            terms?.encode(env)
        }
        JsonValue::Object(object) => {
            let mut map = Term::map_new(env);
            for (key, item) in object {
                let k = match Atom::existing_from_str(env, key) {
                    Ok(atom) => atom.encode(env),
                    Err(_) => key.encode(env),
                };
                map = map
                    .map_put(k, to_term(env, item)?)
                    .map_err(|_| CoreError::Internal("cannot build map".into()))?;
            }
            map
        }
    })
}
