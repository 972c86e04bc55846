//! The Ray tutorial's Tune example: a 5 × 5 grid over `x` and `y`, each trial "training" for
//! `--sleep` seconds (10 as in the tutorial) and reporting `score = sqrt((x² + y²) / 2)`; prints
//! the best config by `score`, lowest first.
//!
//!     cargo run --release -p tune --example tune_grid -- --sleep 0

use serde_json::json;
use tune::{Mode, RunConfig, Space, Tuner, grid_search};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut sleep = 10.0f64;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--sleep" => {
                let v = args.next().ok_or("--sleep needs seconds")?;
                sleep = v
                    .parse()
                    .ok()
                    .filter(|s: &f64| s.is_finite() && *s >= 0.0)
                    .ok_or_else(|| format!("--sleep {v}: expected seconds >= 0"))?;
            }
            other => return Err(format!("unknown argument {other} (expected --sleep S)").into()),
        }
    }
    let my_func = tune::function(move |config, session: &mut tune::Session| {
        let x = config["x"].as_f64().unwrap_or(0.0);
        let y = config["y"].as_f64().unwrap_or(0.0);
        std::thread::sleep(std::time::Duration::from_secs_f64(sleep));
        session.report(json!({"score": ((x * x + y * y) / 2.0).sqrt()}))
    });
    let space = Space::new()
        .set("x", grid_search([0, 1, 2, 3, 4]))
        .set("y", grid_search([0, 1, 2, 3, 4]));
    let start = std::time::Instant::now();
    let result = Tuner::new("my_func", my_func, space)
        .run_config(RunConfig {
            storage_path: std::env::temp_dir().join("tune_grid"),
            // Ctrl-C stops the trials and keeps the experiment resumable (Tuner::restore).
            interrupt: Some(tune::Interrupt::on_signals()?),
            ..RunConfig::default()
        })
        .fit()?;
    let took = start.elapsed();
    println!(
        "Best config: {}",
        result.get_best_config("score", Mode::Min)?
    );
    println!(
        "{} trials in {:.3} s ({})",
        result.len(),
        took.as_secs_f64(),
        result.experiment_path.display()
    );
    Ok(())
}
