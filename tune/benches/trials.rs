//! Tune's own overhead: the tutorial's 25-trial grid with no sleep, 10,000 trials of a trivial
//! trainable (per-trial cost), and the tutorial's grid with short sleeps against the ideal
//! waves on this machine's CPUs. `cargo bench -p tune --bench trials`.

use std::time::{Duration, Instant};

use serde_json::json;
use tune::{RunConfig, Space, Tuner, grid_search};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn grid(sleep: f64, dir: &std::path::Path, rt: &ray::Runtime) -> f64 {
    let f = tune::function(move |c, s: &mut tune::Session| {
        let (x, y) = (
            c["x"].as_f64().unwrap_or(0.0),
            c["y"].as_f64().unwrap_or(0.0),
        );
        if sleep > 0.0 {
            std::thread::sleep(Duration::from_secs_f64(sleep));
        }
        s.report(json!({"score": ((x * x + y * y) / 2.0).sqrt()}))
    });
    let space = Space::new()
        .set("x", grid_search([0, 1, 2, 3, 4]))
        .set("y", grid_search([0, 1, 2, 3, 4]));
    let t = Instant::now();
    let r = Tuner::new("my_func", f, space)
        .run_config(RunConfig {
            storage_path: dir.to_path_buf(),
            verbose: 0,
            ..RunConfig::default()
        })
        .runtime(rt.clone())
        .fit()
        .expect("fit");
    assert_eq!(r.len(), 25);
    t.elapsed().as_secs_f64()
}

fn main() {
    // Trial folders in memory (/dev/shm) unless TUNE_BENCH_DIR says otherwise: on ext4, creating
    // 40,000 files right after deleting the last run's is slow by itself (3.5 ms per trial in
    // one run here, 0.23 ms in the next), which measures the file system, not Tune.
    let base = std::env::var_os("TUNE_BENCH_DIR")
        .map(std::path::PathBuf::from)
        .or_else(|| Some(std::path::PathBuf::from("/dev/shm")).filter(|p| p.is_dir()))
        .unwrap_or_else(std::env::temp_dir);
    let dir = base.join(format!("tune-bench-{}", std::process::id()));
    println!("trial folders under {}", base.display());
    let rt = ray::init(ray::InitOptions::new()).expect("runtime");
    let cpus = rt.cluster_resources().get(ray::CPU);
    let g0 = median((0..5).map(|_| grid(0.0, &dir, &rt)).collect());
    println!("tutorial grid, --sleep 0, s (median of 5)          {g0:.4}");
    let n = 10_000;
    let trivial = tune::function(|_, s: &mut tune::Session| s.report(json!({"score": 1})));
    let t = Instant::now();
    let r = Tuner::new("trivial", trivial, Space::new().set("i", grid_search(0..n)))
        .with_resources([("CPU", 0.0)])
        .run_config(RunConfig {
            storage_path: dir.clone(),
            verbose: 0,
            ..RunConfig::default()
        })
        .runtime(rt.clone())
        .fit()
        .expect("fit");
    let took = t.elapsed().as_secs_f64();
    assert_eq!(r.len(), n as usize);
    println!(
        "{n} trivial trials, s                              {took:.3} ({:.0} us per trial)",
        took / n as f64 * 1e6
    );
    let sleep = 0.5;
    let waves = (25.0 / cpus).ceil();
    let g = grid(sleep, &dir, &rt);
    println!(
        "tutorial grid, --sleep {sleep}, s ({cpus} CPUs)             {g:.3} (ideal {:.1}: {} waves; {:+.1} %)",
        waves * sleep,
        waves,
        (g / (waves * sleep) - 1.0) * 100.0
    );
    let _ = std::fs::remove_dir_all(&dir);
}
