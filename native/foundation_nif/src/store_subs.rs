//! Subscription NIFs: register, acknowledge and end subscriptions of a
//! store, and the sink through which the store's delivery thread (a thread
//! of ours, never a scheduler) sends each batch to its subscriber with
//! `OwnedEnv::send_and_clear`. Monitoring subscribers is the EventStore
//! process's job; it calls `store_unsubscribe` when one dies.

use crate::atoms;
use crate::error::NifOutcome;
use crate::store::StoreHandle;
use crate::store_codec::to_term;
use foundation_core::store::{Delivery, Filter, Sink, SubOptions, Target};
use rustler::{Atom, Binary, Encoder, Env, LocalPid, NifResult, OwnedEnv, ResourceArc, Term};
use std::sync::Arc;

/// Who a subscription delivers to: the subscriber and the reference its
/// messages carry (kept as external term format, valid in any env).
struct Subscriber {
    pid: LocalPid,
    reference: Vec<u8>,
}

impl Subscriber {
    fn reference<'a>(&self, env: Env<'a>) -> Term<'a> {
        match env.binary_to_term(&self.reference) {
            Some((term, _)) => term,
            None => atoms::nil().encode(env),
        }
    }
}

/// Registers a subscription of `pid`; its messages carry `reference`.
/// `event_type` is an atom or nil, `cid` a binary or nil. Dirty I/O: with a
/// warm tier, a catch-up's registration waits for the writes between the
/// disk and the hot tier to land.
#[rustler::nif(schedule = "DirtyIo")]
#[allow(clippy::too_many_arguments)]
fn store_subscribe(
    store: ResourceArc<StoreHandle>,
    pid: LocalPid,
    reference: Term,
    event_type: Term,
    cid: Option<Binary>,
    max_in_flight: usize,
    buffer: usize,
    from_start: bool,
) -> NifResult<NifOutcome<u64>> {
    let event_type = match event_type.atom_to_string() {
        Ok(name) if name != "nil" => Some(Arc::from(name.as_bytes())),
        _ => None,
    };
    let filter = Filter {
        event_type,
        correlation_id: cid.map(|c| Arc::from(c.as_slice())),
    };
    let options = SubOptions {
        max_in_flight,
        buffer,
        from_start,
    };
    let target: Target = Box::new(Subscriber {
        pid,
        reference: reference.to_binary().as_slice().to_vec(),
    });
    Ok(store
        .0
        .subscribe(filter, options, target, sink)
        .map_err(Into::into))
}

#[rustler::nif]
fn store_unsubscribe(store: ResourceArc<StoreHandle>, id: u64) -> NifOutcome<bool> {
    Ok(store.0.unsubscribe(id)?)
}

#[rustler::nif]
fn store_ack(store: ResourceArc<StoreHandle>, id: u64, count: usize) -> NifOutcome<bool> {
    Ok(store.0.ack(id, count)?)
}

/// `[{id, pid, reference, unacknowledged, dropped}]` of every subscription.
#[rustler::nif]
fn store_subscriptions<'a>(env: Env<'a>, store: ResourceArc<StoreHandle>) -> NifOutcome<Term<'a>> {
    let rows = store.0.subscriptions(|id, target, in_flight, dropped| {
        target
            .downcast_ref::<Subscriber>()
            .map(|s| (id, s.pid, s.reference(env), in_flight, dropped).encode(env))
    })?;
    Ok(rows.into_iter().flatten().collect::<Vec<_>>().encode(env))
}

/// Sets the process told `{:foundation_subscription_dropped, ref, n}`.
#[rustler::nif]
fn store_subscription_owner(store: ResourceArc<StoreHandle>, pid: LocalPid) -> NifOutcome<Atom> {
    store.0.set_subscription_owner(Box::new(pid))?;
    Ok(atoms::ok())
}

/// The delivery thread's sink. A failed send means the subscriber is gone;
/// its monitor ends the subscription.
fn sink() -> Sink {
    let mut env = OwnedEnv::new();
    Box::new(move |delivery| match delivery {
        Delivery::Events {
            target,
            owner,
            dropped,
            events,
        } => {
            let Some(sub) = target.downcast_ref::<Subscriber>() else {
                return;
            };
            if dropped > 0 {
                let tag = atoms::foundation_events_dropped();
                let _ = env.send_and_clear(&sub.pid, |e| notice(e, tag, sub, dropped));
                if let Some(owner) = owner.and_then(|o| o.downcast_ref::<LocalPid>()) {
                    let tag = atoms::foundation_subscription_dropped();
                    let _ = env.send_and_clear(owner, |e| notice(e, tag, sub, dropped));
                }
            }
            if !events.is_empty() {
                let _ = env.send_and_clear(&sub.pid, |e| {
                    let events: Vec<Term> = events.iter().filter_map(|p| decode(e, p)).collect();
                    (atoms::foundation_events(), sub.reference(e), events).encode(e)
                });
            }
        }
        Delivery::Ended { target } => {
            if let Some(sub) = target.downcast_ref::<Subscriber>() {
                let _ = env.send_and_clear(&sub.pid, |e| {
                    let tag = atoms::foundation_subscription_ended();
                    (tag, sub.reference(e), atoms::store_stopped()).encode(e)
                });
            }
        }
    })
}

fn notice<'a>(env: Env<'a>, tag: Atom, sub: &Subscriber, count: u64) -> Term<'a> {
    (tag, sub.reference(env), count).encode(env)
}

/// One delivered payload as a term. A payload in external term format (tag
/// 0, an event's disk form: see `disk_body`) may come from the warm tier,
/// written by an earlier run of the VM: it passed the tier's checksum and
/// was written by this library, so it is decoded as trusted data, which
/// also creates the atoms this VM has not seen yet (safe decoding would
/// refuse them).
fn decode<'a>(env: Env<'a>, payload: &[u8]) -> Option<Term<'a>> {
    match payload.split_first() {
        // See above: the bytes are our own store's or disk tier's.
        Some((0, body)) => crate::disk_body::decode(env, body, true),
        _ => to_term(env, payload).ok(),
    }
}
