//! The library's global allocator: mimalloc, whose per-thread heaps keep
//! writers on different schedulers off one shared allocator arena (with
//! glibc's allocator, eight writers on two cores stored 1.6-1.8x fewer
//! events per second).
//!
//! Test builds wrap it in a counting allocator: the live bytes of the Rust
//! heap, so memory per stored event can be measured rather than estimated.

use mimalloc::MiMalloc;

/// Returns the allocator's free memory to the system (a closed or cleared
/// store's events would otherwise stay in the VM's resident memory). It
/// walks the allocator's heaps: dirty schedulers only.
pub(crate) fn trim() {
    // SAFETY: mi_collect only releases memory the allocator holds free.
    unsafe { libmimalloc_sys::mi_collect(true) }
}

#[cfg(not(feature = "test-support"))]
#[global_allocator]
static ALLOCATOR: MiMalloc = MiMalloc;

#[cfg(feature = "test-support")]
mod counting {
    use super::MiMalloc;
    use std::alloc::{GlobalAlloc, Layout};
    use std::sync::atomic::{AtomicI64, Ordering::Relaxed};

    static LIVE: AtomicI64 = AtomicI64::new(0);

    struct Counting;

    // SAFETY: every call forwards to mimalloc unchanged; we only add
    // bookkeeping on an atomic.
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            let p = unsafe { MiMalloc.alloc(layout) };
            if !p.is_null() {
                LIVE.fetch_add(layout.size() as i64, Relaxed);
            }
            p
        }

        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            unsafe { MiMalloc.dealloc(ptr, layout) };
            LIVE.fetch_sub(layout.size() as i64, Relaxed);
        }

        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            let p = unsafe { MiMalloc.realloc(ptr, layout, new_size) };
            if !p.is_null() {
                LIVE.fetch_add(new_size as i64 - layout.size() as i64, Relaxed);
            }
            p
        }
    }

    #[global_allocator]
    static ALLOCATOR: Counting = Counting;

    /// Bytes currently allocated by the native library's Rust code.
    #[rustler::nif]
    pub(crate) fn native_heap_bytes() -> i64 {
        LIVE.load(Relaxed)
    }
}
