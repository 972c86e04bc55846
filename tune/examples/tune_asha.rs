//! ASHA on a synthetic learning curve: 32 trials whose score climbs towards a quality drawn
//! per trial (`score = quality × (1 − e^(−t/10))`, 5 ms per step, 50 steps at most). Runs the
//! same trials under FIFO and under ASHA and prints how many ASHA stopped early, the steps and
//! the time it saved, and whether both found the same best trial.
//!
//!     cargo run --release -p tune --example tune_asha

use std::time::{Duration, Instant};

use serde_json::json;
use tune::{Asha, Fifo, Mode, RunConfig, Space, TrialScheduler, TuneConfig, Tuner, uniform};

fn curve() -> tune::TrialFn {
    tune::function(|config, session: &mut tune::Session| {
        let q = config["quality"].as_f64().unwrap_or(0.0);
        for t in 1..=50 {
            std::thread::sleep(Duration::from_millis(5));
            session.report(json!({"score": q * (1.0 - (-f64::from(t) / 10.0).exp())}))?;
        }
        Ok::<(), tune::Stopped>(())
    })
}

fn run(scheduler: Box<dyn TrialScheduler>) -> Result<(f64, tune::ResultGrid), tune::TuneError> {
    let start = Instant::now();
    let grid = Tuner::new(
        "curve",
        curve(),
        Space::new().set("quality", uniform(0.0, 1.0)),
    )
    .with_resources([("CPU", 0.25)])
    .tune_config(TuneConfig {
        metric: Some("score".into()),
        mode: Some(Mode::Max),
        num_samples: 32,
        scheduler,
        seed: 7,
        ..TuneConfig::default()
    })
    .run_config(RunConfig {
        storage_path: std::env::temp_dir().join("tune_asha"),
        verbose: 0,
        ..RunConfig::default()
    })
    .fit()?;
    Ok((start.elapsed().as_secs_f64(), grid))
}

fn main() -> Result<(), tune::TuneError> {
    let (fifo_s, fifo) = run(Box::new(Fifo))?;
    let asha = Asha::new()
        .max_t(50.0)
        .grace_period(2.0)
        .reduction_factor(3.0);
    let (asha_s, asha) = run(Box::new(asha))?;
    let steps = |g: &tune::ResultGrid| g.results.iter().map(|r| r.num_results).sum::<usize>();
    let stopped = asha
        .results
        .iter()
        .filter(|r| r.stopped_early && r.num_results < 50)
        .count();
    let best = |g: &tune::ResultGrid| -> Result<String, tune::TuneError> {
        Ok(g.get_best_result(None, None)?.config.to_string())
    };
    println!(
        "FIFO: {} trials, {} steps, {fifo_s:.2} s, best {}",
        fifo.len(),
        steps(&fifo),
        best(&fifo)?
    );
    println!(
        "ASHA: {} trials, {stopped} stopped early, {} steps, {asha_s:.2} s ({:.0} % of FIFO's time), best {}",
        asha.len(),
        steps(&asha),
        100.0 * asha_s / fifo_s,
        best(&asha)?
    );
    Ok(())
}
