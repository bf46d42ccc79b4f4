//! The metric store's resource type, opened by the library's load callback
//! and decoded with one `enif_get_resource` call: every counter call decodes
//! the handle, and rustler's typed decoding first finds the type in a
//! global map keyed by `TypeId` (a SipHash per call), which cost as much as
//! the cached increment itself.

use foundation_core::metrics::Metrics;
use rustler::sys::{
    c_char, c_void, enif_alloc_resource, enif_get_resource, enif_make_resource,
    enif_open_resource_type, enif_release_resource, ErlNifEnv, ErlNifResourceFlags,
    ErlNifResourceType,
};
use rustler::{Env, Error, NifResult, Term};
use std::mem::{align_of, size_of, MaybeUninit};
use std::ptr;
use std::sync::atomic::{AtomicPtr, Ordering};

// The VM aligns resource memory to 8 bytes; `Metrics` needs no more.
const _: () = assert!(align_of::<Metrics>() <= 8);

/// The type opened at load; null until then (every decode then fails).
static TYPE: AtomicPtr<ErlNifResourceType> = AtomicPtr::new(ptr::null_mut());

/// Opens the type (load callback only); false if the VM refuses it.
pub fn open(env: Env) -> bool {
    let name = b"ElixirScope.Foundation.Metrics\0";
    let mut tried = MaybeUninit::<ErlNifResourceFlags>::uninit();
    // SAFETY: called from the load callback with its env; `name` is
    // NUL-terminated and static; `destructor` matches the dtor signature.
    let typ = unsafe {
        enif_open_resource_type(
            env.as_c_arg(),
            ptr::null(),
            name.as_ptr() as *const c_char,
            Some(destructor),
            ErlNifResourceFlags::ERL_NIF_RT_CREATE,
            tried.as_mut_ptr(),
        )
    };
    TYPE.store(typ as *mut ErlNifResourceType, Ordering::Release);
    !typ.is_null()
}

/// Runs once the last reference to a handle is gone.
unsafe extern "C" fn destructor(_env: *mut ErlNifEnv, obj: *mut c_void) {
    // SAFETY: `obj` holds the `Metrics` written by `make` (the VM calls the
    // destructor once per object, after every reference was dropped).
    unsafe { ptr::drop_in_place(obj as *mut Metrics) };
}

/// The term of a new resource holding `metrics`.
pub fn make(env: Env, metrics: Metrics) -> NifResult<Term> {
    let typ = TYPE.load(Ordering::Acquire);
    if typ.is_null() {
        return Err(Error::BadArg);
    }
    // SAFETY: `typ` was opened at load; the allocation has room and
    // alignment for a `Metrics` (see the assertion above), which is written
    // before the object is shared; the term keeps it alive once our own
    // reference is released.
    unsafe {
        let obj = enif_alloc_resource(typ, size_of::<Metrics>());
        if obj.is_null() {
            return Err(Error::BadArg);
        }
        ptr::write(obj as *mut Metrics, metrics);
        let term = enif_make_resource(env.as_c_arg(), obj);
        enif_release_resource(obj);
        Ok(Term::new(env, term))
    }
}

/// The metric store behind a handle term (badarg for any other term); valid
/// while the term is, i.e. for the NIF call.
pub fn get<'a>(term: Term<'a>) -> NifResult<&'a Metrics> {
    let typ = TYPE.load(Ordering::Acquire);
    if typ.is_null() {
        return Err(Error::BadArg);
    }
    let mut obj: *const c_void = ptr::null();
    // SAFETY: `enif_get_resource` only reads the term and writes `obj`; a
    // non-zero answer means `obj` is an object of our type, so it holds the
    // `Metrics` written by `make`, and `term` references it for the call.
    unsafe {
        match enif_get_resource(term.get_env().as_c_arg(), term.as_c_arg(), typ, &mut obj) {
            0 => Err(Error::BadArg),
            _ => Ok(&*(obj as *const Metrics)),
        }
    }
}
