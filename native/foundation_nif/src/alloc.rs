//! The library's global allocator: mimalloc, whose per-thread heaps keep
//! writers on different schedulers off one shared allocator arena (with
//! glibc's allocator, eight writers on two cores stored 1.6-1.8x fewer
//! events per second).
//!
//! Test builds wrap it in a counting allocator: the live bytes of the Rust
//! heap, so memory per stored event can be measured rather than estimated.

use mimalloc::MiMalloc;
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

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
///
/// Free pages go back to the system 5 seconds after they were freed (the
/// allocator's default is 10 ms), so memory a store frees and soon needs
/// again (an evicted or pruned event's, a closed store's, see `trim`) is
/// reused without a page fault. In alternated runs of 8 processes storing
/// into a store of a restarted application, this took `Events.store/1`
/// from 757 000-813 000 to 837 000-884 000 writes per second.
#[cfg(target_os = "linux")]
extern "C" fn configure() {
    // SAFETY: sets mimalloc option values, read when it maps memory.
    unsafe { foundation_nif_mimalloc_options() }
}

#[cfg(target_os = "linux")]
#[used]
#[link_section = ".init_array"]
static CONFIGURE_AT_LOAD: extern "C" fn() = configure;

/// How long the allocator keeps the memory a closed or cleared store freed
/// before it is handed back to the system (`trim`).
const TRIM_AFTER: Duration = Duration::from_secs(5);

/// Hands the allocator's free memory back to the system `TRIM_AFTER` after
/// the last call (a closed or cleared store's events would otherwise stay
/// in the VM's resident memory). Until then the memory is reused by the
/// next stores: a test suite or a benchmark that closes a store and opens
/// another writes into pages it already has, as the VM's own allocators
/// do with their cached carriers, instead of paying a page fault for every
/// 4 KiB of a growing store (5-17% of a write call in profiles of a store
/// growing into fresh memory). The forced collection walks the allocator's
/// heaps, so it runs on a thread of its own; if that thread cannot be
/// started it runs at once, on the calling (dirty) scheduler.
pub(crate) fn trim() {
    match trimmer() {
        Some(t) => {
            *t.due.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now() + TRIM_AFTER);
            t.wake.notify_one();
        }
        None => collect(),
    }
}

fn collect() {
    // SAFETY: mi_collect only releases memory the allocator holds free.
    unsafe { libmimalloc_sys::mi_collect(true) }
}

/// The deadline of the next collection, and the thread waiting for it.
struct Trimmer {
    due: Mutex<Option<Instant>>,
    wake: Condvar,
}

/// The trimmer, its thread started on first use (`None`: it could not be).
fn trimmer() -> Option<&'static Trimmer> {
    static TRIMMER: OnceLock<Option<&'static Trimmer>> = OnceLock::new();
    *TRIMMER.get_or_init(|| {
        let t: &'static Trimmer = Box::leak(Box::new(Trimmer {
            due: Mutex::new(None),
            wake: Condvar::new(),
        }));
        std::thread::Builder::new()
            .name("alloc-trim".into())
            .spawn(move || trim_loop(t))
            .ok()
            .map(|_| t)
    })
}

/// Waits for a deadline, then for it to pass with no later one set, then
/// collects; for as long as the VM runs.
fn trim_loop(t: &Trimmer) {
    // The allocator collects the calling thread's heap and what all threads
    // share; a thread that never allocated has no heap, and its collection
    // does nothing at all.
    drop(std::hint::black_box(Box::new(0u64)));
    let lock = || t.due.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let mut due = lock();
        loop {
            match *due {
                None => due = t.wake.wait(due).unwrap_or_else(|e| e.into_inner()),
                Some(at) => match at.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => {
                        due = t
                            .wake
                            .wait_timeout(due, left)
                            .unwrap_or_else(|e| e.into_inner())
                            .0;
                    }
                    _ => {
                        *due = None;
                        break;
                    }
                },
            }
        }
        drop(due);
        collect();
    }
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
