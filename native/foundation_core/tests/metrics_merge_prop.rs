//! Property tests: the metric store (with its atomic counter fast path)
//! merges measurements exactly like a plain sequential model of the
//! TelemetryService recording rules.

use foundation_core::metrics::{Key, Measure, Metrics};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Counter(Measure),
    Record(Vec<(Key, Measure)>),
}

fn key() -> impl Strategy<Value = Key> {
    prop_oneof![
        Just(Key::Gauge),
        Just(Key::Counter),
        Just(Key::Other(b"a".to_vec())),
        Just(Key::Other(b"b".to_vec())),
    ]
}

fn measure() -> impl Strategy<Value = Measure> {
    prop_oneof![
        (-1000i64..1000).prop_map(Measure::Int),
        prop_oneof![Just(i64::MAX - 1), Just(i64::MIN + 1)].prop_map(Measure::Int),
        (-1.0e6f64..1.0e6).prop_map(Measure::Float),
        "[a-z]{0,3}".prop_map(|s| Measure::Term(s.into_bytes())),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        measure().prop_map(Op::Counter),
        proptest::collection::vec((key(), measure()), 0..4).prop_map(Op::Record),
    ]
}

/// The rules, written independently of the implementation.
fn model_merge(key: &Key, old: &Measure, new: &Measure) -> Measure {
    let num = |m: &Measure| match m {
        Measure::Int(i) => Some((Some(*i), *i as f64)),
        Measure::Float(f) => Some((None, *f)),
        Measure::Term(_) => None,
    };
    match (key, num(old), num(new)) {
        (Key::Gauge, _, _) => new.clone(),
        (Key::Counter, Some((Some(a), _)), Some((Some(b), _))) => match a.checked_add(b) {
            Some(s) => Measure::Int(s),
            None => Measure::Float((a as i128 + b as i128) as f64),
        },
        (Key::Counter, Some((_, a)), Some((_, b))) => Measure::Float(a + b),
        (_, Some((Some(a), _)), Some((Some(b), _))) => {
            Measure::Float((a as i128 + b as i128) as f64 / 2.0)
        }
        (_, Some((_, a)), Some((_, b))) => Measure::Float((a + b) / 2.0),
        _ => new.clone(),
    }
}

fn model_apply(state: &mut Vec<(Key, Measure)>, incoming: &[(Key, Measure)]) {
    for (k, v) in incoming {
        match state.iter_mut().find(|(sk, _)| sk == k) {
            Some((_, old)) => *old = model_merge(k, old, v),
            None => state.push((k.clone(), v.clone())),
        }
    }
}

fn sorted(mut m: Vec<(Key, Measure)>) -> Vec<(Key, Measure)> {
    m.sort_by_key(|(k, _)| format!("{k:?}"));
    m
}

proptest! {
    #[test]
    fn store_matches_the_sequential_model(ops in proptest::collection::vec(op(), 1..40)) {
        let metrics = Metrics::new(4);
        let name = vec!["m".to_string()];
        let mut model: Vec<(Key, Measure)> = Vec::new();
        for (i, op) in ops.iter().enumerate() {
            let meta = move || Ok(vec![i as u8]);
            match op {
                Op::Counter(v) => {
                    metrics.add_counter(name.clone(), v.clone(), meta, i as i64).unwrap();
                    model_apply(&mut model, &[(Key::Counter, v.clone())]);
                }
                Op::Record(m) => {
                    // A map has unique keys: the last duplicate wins, as in Elixir.
                    let mut unique: Vec<(Key, Measure)> = Vec::new();
                    for (k, v) in m {
                        unique.retain(|(uk, _)| uk != k);
                        unique.push((k.clone(), v.clone()));
                    }
                    metrics.record(name.clone(), unique.clone(), meta, i as i64).unwrap();
                    model_apply(&mut model, &unique);
                }
            }
        }
        let snap = metrics.snapshot().unwrap();
        prop_assert_eq!(snap.len(), 1);
        let entry = &snap[0].1;
        prop_assert_eq!(entry.count, ops.len() as u64);
        prop_assert_eq!(entry.timestamp, ops.len() as i64 - 1);
        prop_assert_eq!(&entry.metadata, &vec![0u8]);
        prop_assert_eq!(sorted(entry.measurements.clone()), sorted(model));
    }
}
