//! Retrieving eight words, each after a delay of `i / 10` seconds: first one after another
//! (about 2.8 s), then as eight tasks on a runtime started with 8 logical CPUs (about 0.7 s,
//! the longest single delay).
//!
//!     cargo run --release --example retrieve

use std::thread::sleep;
use std::time::{Duration, Instant};

const WORDS: [&str; 8] = [
    "Learning",
    "Ray",
    "Flexible",
    "Distributed",
    "Python",
    "for",
    "Machine",
    "Learning",
];

fn retrieve(i: usize) -> (usize, &'static str) {
    sleep(Duration::from_millis(100 * i as u64));
    (i, WORDS[i])
}

fn main() -> Result<(), ray::RayError> {
    let start = Instant::now();
    let sequential: Vec<_> = (0..WORDS.len()).map(retrieve).collect();
    let seq_time = start.elapsed().as_secs_f64();
    println!("Sequential runtime: {seq_time:.2} seconds, data:");
    for (i, w) in &sequential {
        println!("  {i}: {w}");
    }

    // Logical CPUs, as `ray.init(num_cpus=8)`: the tasks sleep, so eight fit on any machine.
    let rt = ray::init(ray::InitOptions::new().num_cpus(8.0))?;
    let start = Instant::now();
    let refs = (0..WORDS.len())
        .map(|i| rt.task(move || retrieve(i)).remote())
        .collect::<Result<Vec<_>, _>>()?;
    let parallel = ray::get_all(&refs)?;
    let par_time = start.elapsed().as_secs_f64();
    println!("Runtime with 8 tasks: {par_time:.2} seconds, data:");
    for (i, w) in &parallel {
        println!("  {i}: {w}");
    }
    assert_eq!(sequential, parallel);
    println!("Speed-up: {:.1}x", seq_time / par_time);
    rt.shutdown();
    Ok(())
}
