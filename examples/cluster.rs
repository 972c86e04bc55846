//! A driver on a running cluster: `rllib start --head`, then
//! `cargo run --release --example cluster` on the same machine (or set `RAY_ADDRESS`).
//! Runs one task per CPU and prints where each ran.

use std::time::Duration;

fn main() -> Result<(), ray::RayError> {
    let address = std::env::var("RAY_ADDRESS").unwrap_or_else(|_| "auto".to_string());
    let rt = ray::init(ray::InitOptions::new().address(address))?;
    let cpus = rt.cluster_resources().get(ray::CPU) as usize;
    println!("{} node(s), {cpus} CPU(s)", rt.nodes().len());
    let refs: Vec<_> = (0..cpus)
        .map(|_| {
            rt.remote_task("ray.sleep_ms")
                .arg(&300u64)
                .remote::<String>()
        })
        .collect::<Result<_, _>>()?;
    for r in refs {
        println!("ran on {}", r.get_timeout(Duration::from_secs(60))?);
    }
    std::thread::sleep(Duration::from_millis(500));
    println!("available after: {}", rt.available_resources());
    Ok(())
}
