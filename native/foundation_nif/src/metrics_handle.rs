//! The metric store's resource type, opened by the library's load callback
//! and decoded with one `enif_get_resource` call: every counter call decodes
//! the handle, and rustler's typed decoding first finds the type in a
//! global map keyed by `TypeId` (a SipHash per call), which cost as much as
//! the cached increment itself.
//!
//! A handle also knows whether its owner, the TelemetryService process that
//! attached it (`own`), is alive: the VM monitors the owner for the
//! resource and the down callback forgets it, so the hot path checks one
//! atomic instead of the caller asking `Process.alive?/1`.

use foundation_core::metrics::Metrics;
use rustler::sys::{
    c_char, c_void, enif_alloc_resource, enif_get_resource, enif_make_resource,
    enif_monitor_process, enif_open_resource_type_x, enif_release_resource, enif_self, ErlNifEnv,
    ErlNifMonitor, ErlNifPid, ErlNifResourceDown, ErlNifResourceDtor, ErlNifResourceFlags,
    ErlNifResourceType, ErlNifResourceTypeInit,
};
use rustler::{Env, Error, NifResult, Term};
use std::mem::{align_of, size_of, MaybeUninit};
use std::ptr;
use std::sync::atomic::{AtomicPtr, AtomicU64, Ordering};

/// The resource's contents: the store and its owner's pid word (0: none).
struct MetricsHandle {
    metrics: Metrics,
    owner: AtomicU64,
}

// The VM aligns resource memory to 8 bytes; the handle needs no more.
const _: () = assert!(align_of::<MetricsHandle>() <= 8);

/// The type opened at load; null until then (every decode then fails).
static TYPE: AtomicPtr<ErlNifResourceType> = AtomicPtr::new(ptr::null_mut());

/// Opens the type (load callback only); false if the VM refuses it.
pub fn open(env: Env) -> bool {
    let name = b"ElixirScope.Foundation.Metrics\0";
    let mut tried = MaybeUninit::<ErlNifResourceFlags>::uninit();
    // The VM reads the callbacks as function pointers (rustler casts its own
    // the same way).
    let init = ErlNifResourceTypeInit {
        dtor: destructor as *const ErlNifResourceDtor,
        stop: ptr::null(),
        down: down as *const ErlNifResourceDown,
    };
    // SAFETY: called from the load callback with its env; `name` is
    // NUL-terminated and static; the callbacks match the VM's signatures
    // and `init` is copied by the call.
    let typ = unsafe {
        enif_open_resource_type_x(
            env.as_c_arg(),
            name.as_ptr() as *const c_char,
            &init,
            ErlNifResourceFlags::ERL_NIF_RT_CREATE,
            tried.as_mut_ptr(),
        )
    };
    TYPE.store(typ as *mut ErlNifResourceType, Ordering::Release);
    !typ.is_null()
}

/// Runs once the last reference to a handle is gone.
unsafe extern "C" fn destructor(_env: *mut ErlNifEnv, obj: *mut c_void) {
    // SAFETY: `obj` holds the `MetricsHandle` written by `make` (the VM calls
    // the destructor once per object, after every reference was dropped).
    unsafe { ptr::drop_in_place(obj as *mut MetricsHandle) };
}

/// Runs when a monitored owner exits: forgets it unless a newer owner took
/// the handle meanwhile.
unsafe extern "C" fn down(
    _env: *mut ErlNifEnv,
    obj: *mut c_void,
    pid: *const ErlNifPid,
    _mon: *const ErlNifMonitor,
) {
    // SAFETY: `obj` is a live object of our type (the VM holds it for the
    // callback) and `pid` points to the exited process's pid.
    let (handle, word) = unsafe { (&*(obj as *const MetricsHandle), pid_word(*pid)) };
    let _ = handle
        .owner
        .compare_exchange(word, 0, Ordering::AcqRel, Ordering::Acquire);
}

/// The term word of a pid (a local pid is an immediate, unique while the
/// process lives); `ErlNifPid` keeps it in a private field.
fn pid_word(pid: ErlNifPid) -> u64 {
    // SAFETY: ErlNifPid is #[repr(C)] over one ErlNifTerm, itself
    // #[repr(transparent)] over usize; transmute checks the sizes.
    let word: usize = unsafe { std::mem::transmute::<ErlNifPid, usize>(pid) };
    word as u64
}

/// The term of a new resource holding `metrics`.
pub fn make(env: Env, metrics: Metrics) -> NifResult<Term> {
    let typ = TYPE.load(Ordering::Acquire);
    if typ.is_null() {
        return Err(Error::BadArg);
    }
    let handle = MetricsHandle {
        metrics,
        owner: AtomicU64::new(0),
    };
    // SAFETY: `typ` was opened at load; the allocation has room and
    // alignment for a `MetricsHandle` (see the assertion above), which is
    // written before the object is shared; the term keeps it alive once our
    // own reference is released.
    unsafe {
        let obj = enif_alloc_resource(typ, size_of::<MetricsHandle>());
        if obj.is_null() {
            return Err(Error::BadArg);
        }
        ptr::write(obj as *mut MetricsHandle, handle);
        let term = enif_make_resource(env.as_c_arg(), obj);
        enif_release_resource(obj);
        Ok(Term::new(env, term))
    }
}

/// The metric store behind a handle term (badarg for any other term); valid
/// while the term is, i.e. for the NIF call.
pub fn get<'a>(term: Term<'a>) -> NifResult<&'a Metrics> {
    handle(term).map(|h| &h.metrics)
}

/// `get`, but only while the handle's owner lives (see `own`).
pub fn get_owned<'a>(term: Term<'a>) -> NifResult<&'a Metrics> {
    let h = handle(term)?;
    match h.owner.load(Ordering::Acquire) {
        0 => Err(Error::BadArg),
        _ => Ok(&h.metrics),
    }
}

/// Makes the calling process the handle's owner, monitored by the VM until
/// it exits. False (no owner) if the process is already exiting.
pub fn own(env: Env, term: Term) -> NifResult<bool> {
    let h = handle(term)?;
    let mut pid = MaybeUninit::<ErlNifPid>::uninit();
    // SAFETY: `enif_self` fills `pid` for the calling process (a NIF call
    // always has one) and returns it; `h` is a live object of our type.
    unsafe {
        let pid = *enif_self(env.as_c_arg(), pid.as_mut_ptr());
        h.owner.store(pid_word(pid), Ordering::Release);
        let obj = h as *const MetricsHandle as *const c_void;
        if enif_monitor_process(env.as_c_arg(), obj, &pid, ptr::null_mut()) != 0 {
            h.owner.store(0, Ordering::Release);
            return Ok(false);
        }
    }
    Ok(true)
}

fn handle<'a>(term: Term<'a>) -> NifResult<&'a MetricsHandle> {
    let typ = TYPE.load(Ordering::Acquire);
    if typ.is_null() {
        return Err(Error::BadArg);
    }
    let mut obj: *const c_void = ptr::null();
    // SAFETY: `enif_get_resource` only reads the term and writes `obj`; a
    // non-zero answer means `obj` is an object of our type, so it holds the
    // `MetricsHandle` written by `make`, and `term` references it for the call.
    unsafe {
        match enif_get_resource(term.get_env().as_c_arg(), term.as_c_arg(), typ, &mut obj) {
            0 => Err(Error::BadArg),
            _ => Ok(&*(obj as *const MetricsHandle)),
        }
    }
}
