//! Ten tasks that each sleep one second and return `x * x`, gathered with one `get`.
//! Ray's first example; with N CPUs it takes about ceil(10 / N) seconds.
//!
//!     cargo run --release --example my_task

use std::time::{Duration, Instant};

fn main() -> Result<(), ray::RayError> {
    let rt = ray::init(ray::InitOptions::new())?;
    let start = Instant::now();
    let refs = (0..10u64)
        .map(|x| {
            rt.task(move || {
                std::thread::sleep(Duration::from_secs(1));
                x * x
            })
            .remote()
        })
        .collect::<Result<Vec<_>, _>>()?;
    let squares = ray::get_all(&refs)?;
    println!("{squares:?}");
    println!(
        "10 one-second tasks on {} CPUs took {:.2} s",
        rt.cluster_resources().get(ray::CPU),
        start.elapsed().as_secs_f64()
    );
    rt.shutdown();
    Ok(())
}
