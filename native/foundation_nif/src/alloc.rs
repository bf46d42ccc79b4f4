//! A counting global allocator: the live bytes of the Rust heap, so memory
//! per stored event can be measured rather than estimated.
//!
//! The count is striped: each thread adds to one of `STRIPES` counters,
//! each on its own cache line, and a read sums them. One shared counter
//! would be written by every allocation of every scheduler thread, moving
//! its cache line between cores several times per stored event.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering::Relaxed};

/// Counters of the live bytes (a thread's net count may go negative when
/// it frees what another thread allocated; only the sum is meaningful).
const STRIPES: usize = 32;

#[repr(align(128))]
struct Stripe(AtomicI64);

static LIVE: [Stripe; STRIPES] = [const { Stripe(AtomicI64::new(0)) }; STRIPES];

/// Hands out stripes to threads in turn.
static NEXT: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    // Const-initialized and without a destructor: usable from inside the
    // allocator (no lazy initialization, no allocation).
    static STRIPE: Cell<usize> = const { Cell::new(usize::MAX) };
}

fn add(bytes: i64) {
    let index = STRIPE
        .try_with(|s| match s.get() {
            usize::MAX => {
                let i = NEXT.fetch_add(1, Relaxed) % STRIPES;
                s.set(i);
                i
            }
            i => i,
        })
        .unwrap_or(0);
    if let Some(stripe) = LIVE.get(index) {
        stripe.0.fetch_add(bytes, Relaxed);
    }
}

struct Counting;

// SAFETY: every call forwards to the system allocator unchanged; we only add
// bookkeeping on an atomic.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            add(layout.size() as i64);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        add(-(layout.size() as i64));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            add(new_size as i64 - layout.size() as i64);
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Bytes currently allocated by the native library's Rust code.
#[rustler::nif]
fn native_heap_bytes() -> i64 {
    LIVE.iter().map(|s| s.0.load(Relaxed)).sum()
}
