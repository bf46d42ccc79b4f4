//! JSON fallback NIFs (`json_*`) of Events.GracefulDegradation, built on
//! serde_json in the core. Decoding makes map keys atoms only when such an
//! atom already exists; other keys stay strings.

use crate::atoms;
use crate::decode::to_value;
use crate::error::NifError;
use foundation_core::json::{self, JsonValue};
use foundation_core::CoreError;
use rustler::{Atom, Binary, Encoder, Env, Term};

/// Encodes any term as JSON text (`{:ok, binary}`). Terms nested deeper than
/// `decode::MAX_DEPTH` are an `invalid_input` error.
#[rustler::nif(schedule = "DirtyCpu")]
fn json_encode(term: Term) -> Result<String, NifError> {
    let value = to_value(term)?;
    Ok(json::encode(&value)?)
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
