//! The library's global allocator: mimalloc, whose per-thread heaps keep
//! writers on different schedulers off one shared allocator arena (with
//! glibc's allocator, eight writers on two cores stored 1.6-1.8x fewer
//! events per second).
//!
//! Test builds wrap it in a counting allocator: the live bytes of the Rust
//! heap, so memory per stored event can be measured rather than estimated.

use mimalloc::MiMalloc;

extern "C" {
    /// Sets the options below by their names (c/mimalloc_options.c).
    fn foundation_nif_mimalloc_options();
}

/// Sets the allocator's options. It runs when the system loads the library
/// (a constructor, before any code of the library allocates), so the first
/// memory the allocator maps already follows them.
///
/// The allocator's memory is not advised for transparent huge pages. With
/// them, the first write into each new 2 MiB region zeroes all of it in one
/// page fault, on whichever scheduler thread wrote: on the 2-core virtual
/// machine of the benchmarks, a store call stalled 19-33 ms about once per
/// 4 000 calls while the store grew (`clear_page_erms` under a huge-page
/// fault). With 4 KiB pages the same zeroing is spread over the writes.
/// This applies to the library's own memory only: the VM's settings and
/// the process's THP mode are left as they are.
#[cfg(target_os = "linux")]
extern "C" fn configure() {
    // SAFETY: sets mimalloc option values, read when it maps memory.
    unsafe { foundation_nif_mimalloc_options() }
}

#[cfg(target_os = "linux")]
#[used]
#[link_section = ".init_array"]
static CONFIGURE_AT_LOAD: extern "C" fn() = configure;

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
