//! The cached counter path (`try_add_cached` + `add_counter_caching`, as the
//! NIF drives it) behaves exactly like the plain by-name path, including
//! across removals and handler changes that must invalidate the cache.

use foundation_core::metrics::{Key, Measure, Metrics, Name, Recorded};
use foundation_core::CoreError;
use proptest::prelude::*;
use std::sync::Arc;

const NAMES: [&[&str]; 4] = [&["a"], &["a", "b"], &["c", "d", "e"], &["z"]];

fn name(i: usize) -> Name {
    NAMES[i].iter().map(|s| s.to_string()).collect()
}

/// Segment ids of name `i` (unique per segment, like atom words).
fn ids(i: usize) -> Vec<u64> {
    NAMES[i]
        .iter()
        .map(|s| u64::from(s.as_bytes()[0]) << 6 | 0xb)
        .collect()
}

/// What the NIF does: the cached path, else the general one (which caches).
fn bump(m: &Metrics, i: usize, delta: Measure, now: i64) -> Recorded {
    match m.try_add_cached(&ids(i), &delta, now).unwrap() {
        Some(r) => r,
        None => m
            .add_counter_caching(&ids(i), name(i), delta, || Ok(b"m".to_vec()), now)
            .unwrap(),
    }
}

/// name, count, timestamp, measurements.
type Row = (Name, u64, i64, Vec<(Key, Measure)>);

fn sorted(m: &Metrics) -> Vec<Row> {
    let mut all: Vec<_> = m
        .snapshot()
        .unwrap()
        .into_iter()
        .map(|(n, e)| (n, e.count, e.timestamp, e.measurements))
        .collect();
    all.sort_by(|a, b| a.0.cmp(&b.0));
    all
}

#[derive(Debug, Clone)]
enum Op {
    Counter(usize, Measure),
    Gauge(usize, i64),
    Clear,
    Cleanup(i64),
    Attach(usize),
    Detach(usize),
}

fn op() -> impl Strategy<Value = Op> {
    let delta = prop_oneof![
        4 => (-5i64..5).prop_map(Measure::Int),
        1 => Just(Measure::Int(i64::MAX)),
        1 => (-5.0f64..5.0).prop_map(Measure::Float),
    ];
    prop_oneof![
        8 => (0usize..4, delta).prop_map(|(i, d)| Op::Counter(i, d)),
        1 => (0usize..4, -5i64..5).prop_map(|(i, v)| Op::Gauge(i, v)),
        1 => Just(Op::Clear),
        1 => (0i64..40).prop_map(Op::Cleanup),
        1 => (0usize..4).prop_map(Op::Attach),
        1 => (0usize..4).prop_map(Op::Detach),
    ]
}

proptest! {
    #[test]
    fn cached_path_matches_the_by_name_path(ops in proptest::collection::vec(op(), 0..60)) {
        let (cached, plain) = (Metrics::new(3), Metrics::new(3));
        for (now, op) in ops.into_iter().enumerate() {
            let now = now as i64;
            match op {
                Op::Counter(i, d) => {
                    let a = bump(&cached, i, d.clone(), now);
                    let b = plain.add_counter(name(i), d, || Ok(b"m".to_vec()), now).unwrap();
                    prop_assert_eq!(a, b);
                }
                Op::Gauge(i, v) => {
                    for m in [&cached, &plain] {
                        m.record(name(i), vec![(Key::Gauge, Measure::Int(v))], || Ok(Vec::new()), now)
                            .unwrap();
                    }
                }
                Op::Clear => prop_assert_eq!(cached.clear(), plain.clear()),
                Op::Cleanup(c) => prop_assert_eq!(cached.cleanup(c), plain.cleanup(c)),
                Op::Attach(i) => [&cached, &plain].iter().for_each(|m| m.attach(vec![name(i)])),
                Op::Detach(i) => [&cached, &plain].iter().for_each(|m| m.detach(&[name(i)])),
            }
            prop_assert_eq!(sorted(&cached), sorted(&plain));
            prop_assert_eq!(cached.status(), plain.status());
        }
    }
}

#[test]
fn a_cleared_entry_is_never_incremented_again() {
    let m = Metrics::new(10);
    bump(&m, 0, Measure::Int(1), 1);
    bump(&m, 0, Measure::Int(1), 2);
    assert_eq!(m.clear(), 1);
    bump(&m, 0, Measure::Int(5), 3);
    let all = sorted(&m);
    assert_eq!(all.len(), 1);
    assert_eq!((all[0].1, all[0].2), (1, 3));
    assert_eq!(all[0].3, vec![(Key::Counter, Measure::Int(5))]);
}

#[test]
fn handler_changes_reach_cached_names() {
    let m = Metrics::new(10);
    assert!(!bump(&m, 1, Measure::Int(1), 1).handler);
    m.attach(vec![name(1)]);
    assert!(bump(&m, 1, Measure::Int(1), 2).handler);
    m.detach(&[name(1)]);
    assert!(!bump(&m, 1, Measure::Int(1), 3).handler);
    m.attach(vec![name(1)]);
    m.clear_handlers();
    assert!(!bump(&m, 1, Measure::Int(1), 4).handler);
}

#[test]
fn concurrent_cached_increments_are_exact_and_clears_lose_nothing_after_them() {
    let m = Arc::new(Metrics::new(10));
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let m = Arc::clone(&m);
            std::thread::spawn(move || {
                for i in 0..5_000 {
                    bump(&m, t % 2, Measure::Int(1), i);
                }
            })
        })
        .collect();
    // Clears race the increments; none may hit a removed entry afterwards.
    for _ in 0..50 {
        m.clear();
        std::thread::yield_now();
    }
    for t in threads {
        t.join().unwrap();
    }
    m.clear();
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let m = Arc::clone(&m);
            std::thread::spawn(move || {
                for i in 0..5_000 {
                    bump(&m, 2, Measure::Int(2), i);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let all = sorted(&m);
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].1, 40_000);
    assert_eq!(all[0].3, vec![(Key::Counter, Measure::Int(80_000))]);
}

/// A failing metadata closure (the NIF's `OverBudget` on a normal
/// scheduler) records nothing and counts nothing as dropped; a known name
/// never calls it.
#[test]
fn failing_metadata_records_nothing_and_drops_nothing() {
    let m = Metrics::new(10);
    let over = || Err(CoreError::OverBudget(1));
    let r = m.add_counter_caching(&ids(0), name(0), Measure::Int(1), over, 0);
    assert_eq!(r, Err(CoreError::OverBudget(1)));
    assert_eq!((m.status().metrics, m.status().dropped), (0, 0));
    bump(&m, 0, Measure::Int(1), 0);
    m.add_counter(name(0), Measure::Int(1), over, 0).unwrap();
    assert_eq!(m.snapshot().unwrap()[0].1.count, 2);
}
