//! Property tests: the indexed store answers exactly like a naive model
//! (a map scanned in full for every question) under random operations.

use foundation_core::store::{Bytes, NewEvent, Order, Query, Store, StoreConfig};
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::sync::Arc;

#[derive(Debug, Clone)]
enum Op {
    Put(u64, u8, i64, Option<u8>),
    Get(u64),
    Corr(u8),
    Query(Option<u8>, Option<(i64, i64)>, u8, usize, Option<usize>),
    Prune(i64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (1..60u64, 0..3u8, -20..20i64, proptest::option::of(0..4u8))
            .prop_map(|(i, t, ts, c)| Op::Put(i, t, ts, c)),
        1 => (1..60u64).prop_map(Op::Get),
        1 => (0..4u8).prop_map(Op::Corr),
        2 => (
            proptest::option::of(0..4u8),
            proptest::option::of((-25..25i64, -25..25i64)),
            0..3u8,
            0..5usize,
            proptest::option::of(0..8usize),
        )
            .prop_map(|(t, r, o, off, lim)| Op::Query(t, r, o, off, lim)),
        1 => (-25..25i64).prop_map(Op::Prune),
    ]
}

/// `op()` with timestamps growing with ids (as events built one after the
/// other have), so prunes usually remove the lowest ids and the earliest
/// arrivals: the prune's split path.
fn op_in_id_order() -> impl Strategy<Value = Op> {
    op().prop_map(|op| match op {
        Op::Put(id, t, _, c) => Op::Put(id, t, id as i64 - 30, c),
        Op::Prune(ts) => Op::Prune(ts + 5),
        other => other,
    })
}

/// Model row: (type, timestamp, correlation, arrival sequence).
type Row = (u8, i64, Option<u8>, u64);

#[derive(Default)]
struct Model {
    rows: BTreeMap<u64, Row>,
    seq: u64,
    max: usize,
}

impl Model {
    fn put(&mut self, id: u64, t: u8, ts: i64, c: Option<u8>) {
        self.seq += 1;
        self.rows.insert(id, (t, ts, c, self.seq));
        while self.max > 0 && self.rows.len() > self.max {
            let oldest = self.rows.iter().min_by_key(|(_, r)| r.3).map(|(id, _)| *id);
            oldest.map(|id| self.rows.remove(&id));
        }
    }

    /// Sorts by id (0), (timestamp, id) (1) or that reversed (2).
    fn sorted(&self, mut v: Vec<(u64, Row)>, order: u8) -> Vec<u64> {
        match order {
            0 => v.sort_by_key(|(id, _)| *id),
            1 => v.sort_by_key(|(id, r)| (r.1, *id)),
            _ => v.sort_by_key(|(id, r)| std::cmp::Reverse((r.1, *id))),
        }
        v.into_iter().map(|(id, _)| id).collect()
    }
}

fn name(t: u8) -> Bytes {
    Arc::from(format!("type{t}").as_bytes())
}

fn corr(c: u8) -> Bytes {
    Arc::from(format!("corr{c}").as_bytes())
}

fn ids(v: Vec<Bytes>) -> Vec<u64> {
    v.iter()
        .map(|b| u64::from_be_bytes(b.as_ref().try_into().unwrap()))
        .collect()
}

fn run(ops: Vec<Op>, shards: usize, max: usize) {
    let store = Store::new(StoreConfig {
        shards,
        max_events: max,
        ..StoreConfig::default()
    })
    .unwrap();
    let mut model = Model {
        max,
        ..Model::default()
    };
    for op in ops {
        match op {
            Op::Put(id, t, ts, c) => {
                let e = NewEvent {
                    id,
                    event_type: name(t),
                    timestamp: ts,
                    correlation_id: c.map(corr),
                    payload: Arc::from(id.to_be_bytes().as_slice()),
                };
                assert_eq!(store.put(e).unwrap(), id);
                model.put(id, t, ts, c);
            }
            Op::Get(id) => {
                let got = store.get(id).unwrap().map(|b| ids(vec![b])[0]);
                assert_eq!(got, model.rows.get(&id).map(|_| id));
            }
            Op::Corr(c) => {
                let want: Vec<_> = model
                    .rows
                    .iter()
                    .filter(|(_, r)| r.2 == Some(c))
                    .map(|(i, r)| (*i, *r))
                    .collect();
                assert_eq!(
                    ids(store.get_by_correlation(&corr(c)).unwrap()),
                    model.sorted(want, 1)
                );
            }
            Op::Query(t, range, order, offset, limit) => {
                let q = Query {
                    event_type: t.map(name),
                    time_range: range,
                    order: [Order::Id, Order::Timestamp, Order::TimestampDesc][order as usize],
                    offset,
                    limit,
                };
                let hits: Vec<_> = model
                    .rows
                    .iter()
                    .filter(|(_, r)| t.is_none_or(|t| r.0 == t))
                    .filter(|(_, r)| range.is_none_or(|(a, b)| a <= r.1 && r.1 <= b))
                    .map(|(i, r)| (*i, *r))
                    .collect();
                let want: Vec<u64> = model
                    .sorted(hits, order)
                    .into_iter()
                    .skip(offset)
                    .take(limit.unwrap_or(usize::MAX))
                    .collect();
                assert_eq!(ids(store.query(&q).unwrap()), want);
            }
            Op::Prune(ts) => {
                let before = model.rows.len();
                model.rows.retain(|_, r| r.1 >= ts);
                assert_eq!(store.prune_before(ts).unwrap(), before - model.rows.len());
            }
        }
        assert_eq!(
            store.stats().unwrap().current_event_count,
            model.rows.len() as u64
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn indexes_match_naive_model(ops in proptest::collection::vec(op(), 1..120), shards in 1..9usize) {
        run(ops, shards, 0);
    }

    #[test]
    fn prunes_in_id_order_match_naive_model(ops in proptest::collection::vec(op_in_id_order(), 1..160), shards in 1..5usize, max in 0..40usize) {
        run(ops, shards, max);
    }

    #[test]
    fn retention_matches_naive_model(ops in proptest::collection::vec(op(), 1..120), max in 1..12usize) {
        run(ops, 4, max);
    }
}
