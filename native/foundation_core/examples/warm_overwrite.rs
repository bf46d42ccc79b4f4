//! Cost of overwriting events already on disk (single thread, no BEAM):
//! `cargo run --release -p foundation_core --example warm_overwrite`.
mod support;

use foundation_core::store::warm::{Compression, WarmEvent};
use std::time::Instant;
use support::event;

fn main() {
    for comp in [Compression::None, Compression::Zstd] {
        let (warm, dir) = support::open("warm-overwrite", comp);
        let n = 100_000u64;
        let write = |ids: &mut dyn Iterator<Item = u64>| -> f64 {
            let t = Instant::now();
            let mut count = 0;
            loop {
                let chunk: Vec<WarmEvent> = (&mut *ids).take(100).map(event).collect();
                if chunk.is_empty() {
                    break;
                }
                count += chunk.len();
                warm.append(chunk).unwrap();
            }
            t.elapsed().as_secs_f64() * 1e6 / count as f64
        };
        let fresh = write(&mut (1..=n));
        // Every 7th id, in a scattered order: each batch touches many blocks.
        let again = write(&mut (0..n).map(|i| (i * 7919) % n + 1).step_by(7));
        let fresh_again = write(&mut (n + 1..=2 * n));
        println!(
            "{comp:?}: new ids {fresh:.2} us/event, overwrites {again:.2} us/event, new ids after {fresh_again:.2} us/event"
        );
        warm.close().unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }
}
