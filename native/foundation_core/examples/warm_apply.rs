//! The apply thread's cost per event as the events of four concurrent
//! writers reach it: each writer stores ids of its own range in batches of
//! 100 (timestamps follow the ids, as in `bench/warm_storage.exs`), the
//! batches interleave, and the tier commits them a few thousand at a time.
//! The figure is the committing thread's CPU time (the engine's flush and
//! compaction threads run beside it).
//! `cargo run --release -p foundation_core --example warm_apply`.
mod support;

use foundation_core::store::warm::Compression;
use support::event;

/// CPU time of the calling thread, in microseconds.
fn thread_cpu_us() -> f64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a plain system call filling `t`.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
    t.tv_sec as f64 * 1e6 + t.tv_nsec as f64 / 1e3
}

fn main() {
    const WRITERS: u64 = 4;
    const BATCH: u64 = 100;
    const COMMIT: usize = 4_000;
    println!("| events | writers | commit CPU us/event |");
    println!("|---|---|---|");
    for n in [400_000u64, 1_600_000] {
        for writers in [1, WRITERS] {
            let (warm, dir) = support::open("warm-apply", Compression::None);
            let per = n / writers;
            // Round-robin over the writers' batches of 100.
            let ids = (0..per / BATCH).flat_map(|b| {
                (1..=writers)
                    .flat_map(move |w| (0..BATCH).map(move |i| w * 10_000_000 + b * BATCH + i))
            });
            let packed: Vec<_> = ids.map(|id| warm.pack(event(id)).unwrap()).collect();
            let t = thread_cpu_us();
            let mut it = packed.into_iter().peekable();
            while it.peek().is_some() {
                warm.append_packed(it.by_ref().take(COMMIT).collect())
                    .unwrap();
            }
            let us = (thread_cpu_us() - t) / n as f64;
            println!("| {n} | {writers} | {us:.2} |");
            warm.close().unwrap();
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
}
