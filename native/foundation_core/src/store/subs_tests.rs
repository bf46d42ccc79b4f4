//! Unit tests of live subscriptions (the public behaviour is tested through
//! the Elixir API too).

use super::*;
use crate::store::{NewEvent, StoreConfig};
use crossbeam_channel::{unbounded, Receiver, Sender};
use std::sync::Mutex;
use std::time::Duration;

fn ev(id: u64, ty: &str, cid: Option<&str>) -> NewEvent {
    NewEvent {
        id,
        event_type: Arc::from(ty.as_bytes()),
        timestamp: id as i64,
        correlation_id: cid.map(|c| Arc::from(c.as_bytes())),
        payload: Arc::from(id.to_be_bytes().as_slice()),
    }
}

#[derive(Debug, PartialEq)]
enum Got {
    Events(u64, Vec<u64>),
    Ended,
}

/// Subscribes with a target that is the sender of a channel receiving
/// every delivery.
fn subscribe(store: &Store, filter: Filter, opts: SubOptions) -> (u64, Receiver<Got>) {
    let (tx, rx) = unbounded();
    let sink = move || -> Sink {
        Box::new(move |d: Delivery<'_>| {
            let (target, got) = match d {
                Delivery::Events {
                    target,
                    dropped,
                    events,
                    ..
                } => {
                    let ids = events
                        .iter()
                        .map(|b| u64::from_be_bytes(b.as_ref().try_into().unwrap()))
                        .collect();
                    (target, Got::Events(dropped, ids))
                }
                Delivery::Ended { target } => (target, Got::Ended),
            };
            let senders = target.downcast_ref::<Sender<Got>>().unwrap();
            let _ = senders.send(got);
        })
    };
    let id = store.subscribe(filter, opts, Box::new(tx), sink).unwrap();
    (id, rx)
}

fn opts(max_in_flight: usize, buffer: usize, from_start: bool) -> SubOptions {
    SubOptions {
        max_in_flight,
        buffer,
        from_start,
    }
}

/// Every id received until `n` arrived (acking each batch) or a second of
/// silence.
fn collect(store: &Store, sub: u64, rx: &Receiver<Got>, n: usize) -> (Vec<u64>, u64) {
    let (mut ids, mut dropped) = (Vec::new(), 0);
    while ids.len() < n {
        match rx.recv_timeout(Duration::from_secs(2)) {
            Ok(Got::Events(d, got)) => {
                dropped += d;
                store.ack(sub, got.len()).unwrap();
                ids.extend(got);
            }
            Ok(Got::Ended) | Err(_) => break,
        }
    }
    (ids, dropped)
}

fn store() -> Store {
    Store::new(StoreConfig::default()).unwrap()
}

#[test]
fn filters_match_by_type_and_correlation() {
    let s = store();
    let t = |x: &str| Some(Arc::from(x.as_bytes()));
    let (a, rx_a) = subscribe(&s, Filter::default(), opts(100, 100, false));
    let only_b = Filter {
        event_type: t("b"),
        correlation_id: None,
    };
    let (b, rx_b) = subscribe(&s, only_b, opts(100, 100, false));
    let b_in_c = Filter {
        event_type: t("b"),
        correlation_id: t("c"),
    };
    let (bc, rx_bc) = subscribe(&s, b_in_c, opts(100, 100, false));
    let in_c = Filter {
        event_type: None,
        correlation_id: t("c"),
    };
    let (c, rx_c) = subscribe(&s, in_c, opts(100, 100, false));
    s.put(ev(1, "a", Some("c"))).unwrap();
    s.put_batch(vec![ev(2, "b", None), ev(3, "b", Some("c"))])
        .unwrap();
    s.put(ev(4, "b", Some("d"))).unwrap();
    assert_eq!(collect(&s, a, &rx_a, 4).0, vec![1, 2, 3, 4]);
    assert_eq!(collect(&s, b, &rx_b, 3).0, vec![2, 3, 4]);
    assert_eq!(collect(&s, bc, &rx_bc, 1).0, vec![3]);
    assert_eq!(collect(&s, c, &rx_c, 2).0, vec![1, 3]);
}

#[test]
fn flow_control_drops_the_oldest_and_reports_them() {
    let s = store();
    let (sub, rx) = subscribe(&s, Filter::default(), opts(2, 3, false));
    for id in 1..=10 {
        s.put(ev(id, "a", None)).unwrap();
    }
    // Without an ack, at most two events are delivered.
    let (mut all, mut dropped) = (Vec::new(), 0);
    while let Ok(Got::Events(d, ids)) = rx.recv_timeout(Duration::from_millis(200)) {
        dropped += d;
        all.extend(ids);
    }
    assert!(all.len() <= 2, "{all:?}");
    s.ack(sub, all.len()).unwrap();
    let (rest, more_dropped) = collect(&s, sub, &rx, 10);
    all.extend(rest);
    dropped += more_dropped;
    assert!(dropped > 0);
    assert_eq!(all.len() as u64 + dropped, 10);
    assert!(all.windows(2).all(|w| w[0] < w[1]), "{all:?}");
    assert_eq!(all[all.len() - 3..], [8, 9, 10]);
}

#[test]
fn catch_up_meets_live_writes_without_gap_or_duplicate() {
    let s = Arc::new(store());
    for id in 1..=3000 {
        s.put(ev(id, if id % 2 == 0 { "even" } else { "odd" }, None))
            .unwrap();
    }
    let writers: Vec<_> = (0..3u64)
        .map(|w| {
            let s = s.clone();
            std::thread::spawn(move || {
                for i in 0..2000u64 {
                    let id = 10_000 + w * 10_000 + i;
                    if i % 10 == 0 {
                        s.put_batch(vec![ev(id, "even", None)]).unwrap();
                    } else {
                        s.put(ev(id, "even", None)).unwrap();
                    }
                }
            })
        })
        .collect();
    let even = Filter {
        event_type: Some(Arc::from(b"even".as_slice())),
        correlation_id: None,
    };
    let (sub, rx) = subscribe(&s, even, opts(500, 1_000_000, true));
    for w in writers {
        w.join().unwrap();
    }
    let (ids, dropped) = collect(&s, sub, &rx, 1500 + 6000);
    assert_eq!(dropped, 0);
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), ids.len(), "duplicates");
    assert_eq!(ids.len(), 1500 + 6000, "gap");
    // The stored ones come first, in arrival order.
    let stored: Vec<u64> = (1..=3000).filter(|i| i % 2 == 0).collect();
    assert_eq!(ids[..1500], stored[..]);
}

#[test]
fn unsubscribe_and_close_end_subscriptions() {
    let s = store();
    let (a, rx_a) = subscribe(&s, Filter::default(), opts(10, 10, false));
    let (_b, rx_b) = subscribe(&s, Filter::default(), opts(10, 10, false));
    assert!(s.unsubscribe(a).unwrap());
    assert!(!s.unsubscribe(a).unwrap());
    s.put(ev(1, "a", None)).unwrap();
    s.close().unwrap();
    assert!(rx_a.recv_timeout(Duration::from_millis(100)).is_err());
    assert_eq!(
        rx_b.recv_timeout(Duration::from_secs(2)).unwrap(),
        Got::Events(0, vec![1])
    );
    assert_eq!(
        rx_b.recv_timeout(Duration::from_secs(2)).unwrap(),
        Got::Ended
    );
    let sink = || -> Sink { Box::new(|_| {}) };
    let again = s.subscribe(Filter::default(), opts(1, 1, false), Box::new(()), sink);
    assert_eq!(again, Err(CoreError::Closed));
}

/// A disk tier stand-in: every write goes to its log, then to the store,
/// under one lock (as the warm tier's writer thread does).
struct FakeCold {
    log: Mutex<Vec<NewEvent>>,
    commit: Mutex<()>,
}

impl FakeCold {
    fn write(&self, store: &Store, event: NewEvent) {
        let _commit = self.commit.lock().unwrap();
        self.log.lock().unwrap().push(event.clone());
        store.put(event).unwrap();
    }
}

impl ColdSource for FakeCold {
    fn quiesced(&self, register: &mut dyn FnMut(u64)) -> CoreResult<()> {
        let _commit = self.commit.lock().unwrap();
        register(self.log.lock().unwrap().len() as u64);
        Ok(())
    }

    fn page(
        &self,
        filter: &Filter,
        cursor: Option<&[u8]>,
        boundary: u64,
        max: usize,
    ) -> CoreResult<ColdPage> {
        let log = self.log.lock().unwrap();
        let mut at = cursor.map_or(0, |c| u64::from_be_bytes(c.try_into().unwrap())) as usize;
        let mut events = Vec::new();
        while at < boundary as usize && events.len() < max {
            let e = &log[at];
            if filter.matches(&e.event_type, e.correlation_id.as_ref()) {
                events.push(e.payload.clone());
            }
            at += 1;
        }
        Ok(ColdPage {
            events,
            cursor: Some((at as u64).to_be_bytes().to_vec()),
            done: at >= boundary as usize,
        })
    }
}

#[test]
fn catch_up_from_a_cold_source_covers_evicted_events_and_meets_live_writes() {
    // The memory tier keeps 500 events: most stored ones are only "on disk".
    let s = Arc::new(
        Store::new(StoreConfig {
            max_events: 500,
            ..StoreConfig::default()
        })
        .unwrap(),
    );
    let cold = Arc::new(FakeCold {
        log: Mutex::new(Vec::new()),
        commit: Mutex::new(()),
    });
    s.set_cold_source(Some(cold.clone())).unwrap();
    for id in 1..=3000 {
        cold.write(&s, ev(id, if id % 2 == 0 { "even" } else { "odd" }, None));
    }
    let writers: Vec<_> = (0..3u64)
        .map(|w| {
            let (s, cold) = (s.clone(), cold.clone());
            std::thread::spawn(move || {
                for i in 0..1000u64 {
                    cold.write(&s, ev(10_000 + w * 10_000 + i, "even", None));
                }
            })
        })
        .collect();
    let even = Filter {
        event_type: Some(Arc::from(b"even".as_slice())),
        correlation_id: None,
    };
    let (sub, rx) = subscribe(&s, even, opts(300, 1_000_000, true));
    for w in writers {
        w.join().unwrap();
    }
    let (ids, dropped) = collect(&s, sub, &rx, 1500 + 3000);
    assert_eq!(dropped, 0);
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), ids.len(), "duplicates");
    assert_eq!(ids.len(), 1500 + 3000, "gap");
    let stored: Vec<u64> = (1..=3000).filter(|i| i % 2 == 0).collect();
    assert_eq!(ids[..1500], stored[..]);
}
