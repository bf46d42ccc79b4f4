//! Writer-side cost of the warm tier per event (single thread, no BEAM):
//! `cargo run --release -p foundation_core --example warm_cost`.
mod support;

use foundation_core::store::warm::{Compression, WarmEvent};
use std::time::Instant;
use support::event;

fn main() {
    for comp in [Compression::None, Compression::Gzip, Compression::Zstd] {
        for group in [4usize, 100] {
            let (warm, dir) = support::open("warm-cost", comp);
            let n = 100_000u64;
            let events: Vec<WarmEvent> = (1..=n).map(event).collect();
            let t = Instant::now();
            let packed: Vec<_> = events.into_iter().map(|e| warm.pack(e).unwrap()).collect();
            let pack_us = t.elapsed().as_secs_f64() * 1e6 / n as f64;
            let t = Instant::now();
            let mut it = packed.into_iter().peekable();
            while it.peek().is_some() {
                let chunk: Vec<_> = it.by_ref().take(group).collect();
                warm.append_packed(chunk).unwrap();
            }
            let append_us = t.elapsed().as_secs_f64() * 1e6 / n as f64;
            println!("{comp:?} group {group}: pack {pack_us:.2} us/event, append {append_us:.2} us/event");
            warm.close().unwrap();
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
}
