//! Long store answers read in slices on normal schedulers.
//!
//! A query or correlation group with more results than one normal NIF call
//! may decode is read by a small Elixir loop: each call returns one slice
//! (at most `SLICE_ITEMS` events and about `NORMAL_BYTES` of payloads, or
//! `SLICE_SKIP` skipped matches for an offset) and a cursor, the rank of
//! the last match it visited; the next call resumes after it. No lock is
//! held between calls, and every call stays well under the ~1 ms rule, so
//! other processes run between slices instead of waiting behind one long
//! dirty call. A slice whose events are too big to decode here answers
//! `:dirty`; its `*_dirty` twin then returns the whole rest of the answer.
//!
//! Replies: `{done, order, cursor, skipped, events}` for queries (`order`
//! is the query's order with `:unordered` resolved, to pass back; `cursor`
//! a 16-byte binary or `nil`) and `{done, cursor, events}` for groups.
//! `store_match_count` and `store_correlation_len` tell how long an answer
//! will be, so the caller can make room for it before reading on.

use crate::atoms;
use crate::budget::{self, Routed, Sched, NORMAL_BYTES};
use crate::error::NifOutcome;
use crate::store::StoreHandle;
use crate::store_codec::{query_from, to_terms};
use foundation_core::store::{Order, Page, Slice};
use rustler::{Atom, Binary, Encoder, Env, NewBinary, NifResult, ResourceArc, Term};
use std::time::Instant;

/// Events one normal slice returns at most.
const SLICE_ITEMS: usize = 128;

/// Matches one normal slice skips at most (for an offset).
const SLICE_SKIP: usize = 4_096;

type Reply<'a> = NifResult<Routed<NifOutcome<Term<'a>>>>;

#[rustler::nif]
#[allow(clippy::too_many_arguments)]
fn store_query_slice<'a>(
    env: Env<'a>,
    store: ResourceArc<StoreHandle>,
    event_type: Atom,
    time_range: Option<(i64, i64)>,
    order: Atom,
    after: Term<'a>,
    skip: usize,
    take: usize,
) -> Reply<'a> {
    query_slice(
        env,
        &store,
        (event_type, time_range, order),
        after,
        skip,
        take,
        Sched::Normal,
    )
}

#[rustler::nif(schedule = "DirtyCpu")]
#[allow(clippy::too_many_arguments)]
fn store_query_slice_dirty<'a>(
    env: Env<'a>,
    store: ResourceArc<StoreHandle>,
    event_type: Atom,
    time_range: Option<(i64, i64)>,
    order: Atom,
    after: Term<'a>,
    skip: usize,
    take: usize,
) -> Reply<'a> {
    query_slice(
        env,
        &store,
        (event_type, time_range, order),
        after,
        skip,
        take,
        Sched::Dirty,
    )
}

fn query_slice<'a>(
    env: Env<'a>,
    store: &StoreHandle,
    (event_type, time_range, order): (Atom, Option<(i64, i64)>, Atom),
    after: Term<'a>,
    skip: usize,
    take: usize,
    sched: Sched,
) -> Reply<'a> {
    let started = Instant::now();
    let q = store
        .0
        .resolved(&query_from(env, event_type, time_range, order, 0, 0)?);
    let slice = Slice {
        after: cursor_from(after)?,
        skip,
        take: (take > 0).then_some(take),
        ..bounds(sched)
    };
    let page = match store.0.query_page(&q, &slice) {
        Ok(page) => page,
        Err(e) => return Ok(Routed::Done(Err(e.into()))),
    };
    let order = order_atom(q.order);
    reply(
        env,
        page,
        (sched, started),
        |done, cursor, skipped, events| (done, order, cursor, skipped, events).encode(env),
    )
}

#[rustler::nif]
fn store_correlation_slice<'a>(
    env: Env<'a>,
    store: ResourceArc<StoreHandle>,
    cid: Binary,
    after: Term<'a>,
) -> Reply<'a> {
    correlation_slice(env, &store, cid, after, Sched::Normal)
}

#[rustler::nif(schedule = "DirtyCpu")]
fn store_correlation_slice_dirty<'a>(
    env: Env<'a>,
    store: ResourceArc<StoreHandle>,
    cid: Binary,
    after: Term<'a>,
) -> Reply<'a> {
    correlation_slice(env, &store, cid, after, Sched::Dirty)
}

fn correlation_slice<'a>(
    env: Env<'a>,
    store: &StoreHandle,
    cid: Binary,
    after: Term<'a>,
    sched: Sched,
) -> Reply<'a> {
    let started = Instant::now();
    let slice = Slice {
        after: cursor_from(after)?,
        ..bounds(sched)
    };
    match store.0.correlation_page(cid.as_slice(), &slice) {
        Ok(page) => reply(
            env,
            page,
            (sched, started),
            |done, cursor, _skipped, events| (done, cursor, events).encode(env),
        ),
        Err(e) => Ok(Routed::Done(Err(e.into()))),
    }
}

/// `{count, exact}`: how many events the filters of a query match, exact
/// unless a time range makes it an upper bound (`Store::match_count`). The
/// caller sizes its heap for a long answer with it. O(shards).
#[rustler::nif]
fn store_match_count(
    env: Env,
    store: ResourceArc<StoreHandle>,
    event_type: Atom,
    time_range: Option<(i64, i64)>,
) -> NifResult<NifOutcome<(usize, bool)>> {
    let q = query_from(env, event_type, time_range, atoms::nil(), 0, 0)?;
    Ok(store.0.match_count(&q).map_err(Into::into))
}

/// How many events correlation group `cid` holds. O(shards).
#[rustler::nif]
fn store_correlation_len(store: ResourceArc<StoreHandle>, cid: Binary) -> NifOutcome<usize> {
    store.0.correlation_len(cid.as_slice()).map_err(Into::into)
}

/// A normal slice's bounds, or none (the rest of the answer) on a dirty one.
fn bounds(sched: Sched) -> Slice {
    match sched {
        Sched::Normal => Slice {
            max_items: SLICE_ITEMS,
            max_skip: SLICE_SKIP,
            max_bytes: NORMAL_BYTES,
            ..Slice::all(0, None)
        },
        Sched::Dirty => Slice::all(0, None),
    }
}

/// Decodes the page's events (or answers `:dirty` when they exceed the
/// normal budget) and builds the reply with `build`. A normal call charges
/// its whole time since `started` (the merge and skips as well as the
/// decoding) to the process's timeslice, so a reader looping over slices is
/// preempted as often as its work warrants: slices that only skip matches
/// for an offset return no events but take a few hundred microseconds each.
fn reply<'a>(
    env: Env<'a>,
    page: Page,
    (sched, started): (Sched, Instant),
    build: impl FnOnce(bool, Term<'a>, usize, Vec<Term<'a>>) -> Term<'a>,
) -> Reply<'a> {
    if sched == Sched::Normal && budget::stored_size(&page.items).is_none() {
        // The dirty twin runs next, off this scheduler.
        return Ok(Routed::Dirty);
    }
    let cursor = cursor_term(env, page.cursor)?;
    let events = to_terms(env, &page.items)?;
    let reply = build(page.done, cursor, page.skipped, events);
    if sched == Sched::Normal {
        budget::charge_time(env, started);
    }
    Ok(Routed::Done(Ok(reply)))
}

fn cursor_from(term: Term) -> NifResult<Option<u128>> {
    if term.is_atom() {
        return Ok(None);
    }
    let bin = Binary::from_term(term)?;
    let bytes: [u8; 16] = bin
        .as_slice()
        .try_into()
        .map_err(|_| rustler::Error::BadArg)?;
    Ok(Some(u128::from_be_bytes(bytes)))
}

fn cursor_term(env: Env, cursor: Option<u128>) -> NifResult<Term> {
    Ok(match cursor {
        Some(rank) => NewBinary::from_slice(env, &rank.to_be_bytes()).into(),
        None => atoms::nil().encode(env),
    })
}

fn order_atom(order: Order) -> Atom {
    match order {
        Order::Timestamp => atoms::timestamp(),
        Order::TimestampDesc => atoms::timestamp_desc(),
        Order::Id | Order::Unordered => atoms::event_id(),
    }
}
