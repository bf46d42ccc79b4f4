//! The ConfigServer's audit write: `store_put_valid/2` stores an event its
//! caller built valid and small (a few terms: the audit events of config
//! updates and resets, whose data are a path and two validated leaf values,
//! or two integers), on a normal scheduler, with `store_put/2`'s write but
//! without its walks of the event (the validation and the byte budget): the
//! encoding is the only walk. Anything else must go through `store_put/2`.

use crate::error::NifOutcome;
use crate::store::{put, StoreHandle};
use rustler::{NifResult, ResourceArc, Term};

/// `{:ok, id}` or `{:error, {kind, detail}}`, as `store_put/2` answers for
/// a valid event.
#[rustler::nif]
fn store_put_valid(store: ResourceArc<StoreHandle>, event: Term) -> NifResult<NifOutcome<u64>> {
    put(&store, event)
}
