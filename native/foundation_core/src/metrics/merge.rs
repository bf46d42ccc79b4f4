//! Measurement values and the TelemetryService recording rules: how a new
//! measurement is merged into the one already stored under the same key.

/// A measurement key. `:gauge` and `:counter` have merge rules of their own;
/// any other key is kept as the opaque bytes the caller encoded it to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Key {
    /// The atom `:gauge`: the newest value wins.
    Gauge,
    /// The atom `:counter`: numbers are summed.
    Counter,
    /// Any other key, as opaque encoded bytes.
    Other(Vec<u8>),
}

/// A measurement value: a number the core can do arithmetic on, or any other
/// value kept as opaque encoded bytes (returned exactly as given).
#[derive(Debug, Clone, PartialEq)]
pub enum Measure {
    /// An integer within 64 bits.
    Int(i64),
    /// A float.
    Float(f64),
    /// A non-numeric value, as opaque encoded bytes.
    Term(Vec<u8>),
}

/// A number taken out of a `Measure`.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Num {
    Int(i64),
    Float(f64),
}

impl Measure {
    fn number(&self) -> Option<Num> {
        match self {
            Measure::Int(i) => Some(Num::Int(*i)),
            Measure::Float(f) => Some(Num::Float(*f)),
            Measure::Term(_) => None,
        }
    }
}

impl Num {
    fn to_f64(self) -> f64 {
        match self {
            Num::Int(i) => i as f64,
            Num::Float(f) => f,
        }
    }
}

/// Merges `new` into `old` stored under `key`:
/// `:gauge` -> `new`; `:counter` with two numbers -> their sum; any other
/// key with two numbers -> `(old + new) / 2` as a float; otherwise `new`.
/// An integer sum that overflows 64 bits becomes a float.
pub fn merge_value(key: &Key, old: &Measure, new: Measure) -> Measure {
    match (key, old.number(), new.number()) {
        (Key::Gauge, _, _) => new,
        (Key::Counter, Some(a), Some(b)) => sum(a, b),
        (_, Some(a), Some(b)) => Measure::Float(average(a, b)),
        _ => new,
    }
}

fn sum(a: Num, b: Num) -> Measure {
    match (a, b) {
        (Num::Int(x), Num::Int(y)) => match x.checked_add(y) {
            Some(s) => Measure::Int(s),
            None => Measure::Float((i128::from(x) + i128::from(y)) as f64),
        },
        _ => Measure::Float((a.to_f64() + b.to_f64()).clamp(f64::MIN, f64::MAX)),
    }
}

/// Like Elixir's `(old + new) / 2`: two integers are added exactly first.
fn average(a: Num, b: Num) -> f64 {
    match (a, b) {
        (Num::Int(x), Num::Int(y)) => (i128::from(x) + i128::from(y)) as f64 / 2.0,
        _ => a.to_f64() / 2.0 + b.to_f64() / 2.0,
    }
}

/// Merges a whole incoming measurement map into `current` (keys only in
/// `current` stay, keys only in `incoming` are added).
pub fn merge_all(current: &mut Vec<(Key, Measure)>, incoming: Vec<(Key, Measure)>) {
    for (key, value) in incoming {
        match current.iter_mut().find(|(k, _)| *k == key) {
            Some((k, slot)) => *slot = merge_value(k, slot, value),
            None => current.push((key, value)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn other() -> Key {
        Key::Other(b"duration".to_vec())
    }

    #[test]
    fn gauge_takes_the_new_value() {
        let merged = merge_value(&Key::Gauge, &Measure::Int(5), Measure::Float(1.5));
        assert_eq!(merged, Measure::Float(1.5));
    }

    #[test]
    fn counter_sums_numbers_and_keeps_integers() {
        assert_eq!(
            merge_value(&Key::Counter, &Measure::Int(2), Measure::Int(3)),
            Measure::Int(5)
        );
        assert_eq!(
            merge_value(&Key::Counter, &Measure::Int(2), Measure::Float(0.5)),
            Measure::Float(2.5)
        );
    }

    #[test]
    fn counter_overflow_becomes_a_float() {
        let merged = merge_value(&Key::Counter, &Measure::Int(i64::MAX), Measure::Int(1));
        assert_eq!(merged, Measure::Float(i64::MAX as f64 + 1.0));
    }

    #[test]
    fn other_numbers_average_as_float() {
        assert_eq!(
            merge_value(&other(), &Measure::Int(10), Measure::Int(20)),
            Measure::Float(15.0)
        );
        assert_eq!(
            merge_value(&other(), &Measure::Int(i64::MAX), Measure::Int(i64::MAX)),
            Measure::Float(i64::MAX as f64)
        );
    }

    #[test]
    fn non_numbers_take_the_new_value() {
        let t = Measure::Term(b"x".to_vec());
        assert_eq!(merge_value(&other(), &Measure::Int(1), t.clone()), t);
        assert_eq!(
            merge_value(&Key::Counter, &t, Measure::Int(4)),
            Measure::Int(4)
        );
    }

    #[test]
    fn merge_all_adds_and_keeps_keys() {
        let mut current = vec![(Key::Gauge, Measure::Int(1))];
        merge_all(
            &mut current,
            vec![
                (Key::Counter, Measure::Int(2)),
                (Key::Gauge, Measure::Int(7)),
            ],
        );
        assert_eq!(
            current,
            vec![
                (Key::Gauge, Measure::Int(7)),
                (Key::Counter, Measure::Int(2))
            ]
        );
    }
}
