//! The store's background threads, two for the whole library, started once
//! and never stopped:
//! - the freeing thread frees what big removals take out of a store, so the
//!   call that removed them returns before that memory is walked; it runs
//!   at low priority, behind the schedulers' threads;
//! - the helper thread takes pruned events out of their correlation
//!   groups after the prune has returned (see `Store::prune_shard`).
//!
//! Long-lived matters: the allocator keeps a heap per thread, and a thread
//! that exits leaves its heap for the next new threads to adopt. With
//! short-lived threads per prune, the next prune's new threads spent
//! 5-13 ms adopting that memory, against about 2 ms for the prune itself.

use crossbeam_channel::{bounded, Sender, TrySendError};
use std::panic::AssertUnwindSafe;
use std::sync::OnceLock;

/// Removals queued for freeing at most; past it a caller frees its own
/// (this bounds the memory held by removed events not yet freed).
const FREE_QUEUE: usize = 8;

/// Jobs queued on the helper at most; a job offered past it is refused,
/// and its caller does the work.
const HELPER_QUEUE: usize = 2;

/// The nice value of the freeing thread: the schedulers' threads come
/// first, and the freeing still progresses on a busy machine.
const FREE_NICE: libc::c_int = 19;

type Job = Box<dyn FnOnce() + Send>;

/// A long-lived thread serving a bounded queue of jobs.
struct Worker {
    queue: Option<Sender<Job>>,
}

impl Worker {
    fn start(name: &str, capacity: usize, nice: Option<libc::c_int>) -> Worker {
        let (tx, rx) = bounded::<Job>(capacity);
        let spawned = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                if let Some(nice) = nice {
                    lower_priority(nice);
                }
                // A job that panics is lost; the thread keeps serving.
                for job in rx {
                    let _ = std::panic::catch_unwind(AssertUnwindSafe(job));
                }
            });
        Worker {
            queue: spawned.ok().map(|_| tx),
        }
    }

    /// Queues `job` unless the thread is missing or its queue is full.
    fn offer(&self, job: Job) -> Result<(), Job> {
        match &self.queue {
            Some(tx) => tx.try_send(job).map_err(|e| match e {
                TrySendError::Full(job) | TrySendError::Disconnected(job) => job,
            }),
            None => Err(job),
        }
    }
}

static FREER: OnceLock<Worker> = OnceLock::new();
static HELPER: OnceLock<Worker> = OnceLock::new();

fn freer() -> &'static Worker {
    FREER.get_or_init(|| Worker::start("event_store_free", FREE_QUEUE, Some(FREE_NICE)))
}

fn helper() -> &'static Worker {
    HELPER.get_or_init(|| Worker::start("event_store_help", HELPER_QUEUE, None))
}

/// Starts both threads; later calls do nothing. The NIF library calls it
/// when it loads, so the threads exist before any store.
pub fn start() {
    let _ = (freer(), helper());
}

/// Frees `garbage` on the freeing thread, or here when that thread is
/// missing or already holds `FREE_QUEUE` removals.
pub(crate) fn free_later<T: Send + 'static>(garbage: T) {
    if let Err(job) = freer().offer(Box::new(move || drop(garbage))) {
        job();
    }
}

/// Runs `job` on the helper thread, unless that thread is missing or busy
/// with other work; returns whether it was queued. For work the caller can
/// do itself.
pub(crate) fn offer(job: impl FnOnce() + Send + 'static) -> bool {
    helper().offer(Box::new(job)).is_ok()
}

/// Lowers the calling thread's CPU priority to `nice` (threads it starts
/// inherit it). Best effort.
pub(crate) fn lower_priority(nice: libc::c_int) {
    // SAFETY: plain system calls about the calling thread.
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, nice);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    use std::sync::Arc;
    use std::thread::ThreadId;

    /// Counts its drops: all of them, and those on the thread that made it.
    struct Garbage {
        dropped: Arc<AtomicUsize>,
        by_caller: Arc<AtomicUsize>,
        caller: ThreadId,
    }

    impl Drop for Garbage {
        fn drop(&mut self) {
            if std::thread::current().id() == self.caller {
                self.by_caller.fetch_add(1, SeqCst);
            }
            self.dropped.fetch_add(1, SeqCst);
        }
    }

    fn wait_for(count: &AtomicUsize, n: usize) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while count.load(SeqCst) < n && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        assert_eq!(count.load(SeqCst), n);
    }

    #[test]
    fn frees_everything_mostly_on_its_own_thread() {
        let (dropped, by_caller) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let n = FREE_QUEUE * 10;
        for _ in 0..n {
            free_later(Garbage {
                dropped: Arc::clone(&dropped),
                by_caller: Arc::clone(&by_caller),
                caller: std::thread::current().id(),
            });
        }
        wait_for(&dropped, n);
        // At least the first queue-full went to the freeing thread.
        assert!(by_caller.load(SeqCst) <= n - FREE_QUEUE);
    }

    #[test]
    fn offered_jobs_run_on_the_helper_or_are_refused() {
        let ran = Arc::new(AtomicUsize::new(0));
        let me = std::thread::current().id();
        let mut queued = 0;
        for _ in 0..100 {
            let ran = Arc::clone(&ran);
            if offer(move || {
                if std::thread::current().id() != me {
                    ran.fetch_add(1, SeqCst);
                }
            }) {
                queued += 1;
            }
        }
        assert!(queued >= 1);
        wait_for(&ran, queued);
    }
}
