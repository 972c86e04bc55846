//! An experiment whose config searches (`lr: {grid_search: [...]}`, `--num-samples`) runs
//! through Tune, as RLlib's `rllib train` ran `tune.run`: one trial per variant, each an RLlib
//! run in its Tune trial folder (its own `params.yaml`, `progress.csv`, `result.json`,
//! TensorBoard events and checkpoints), scheduled by Tune's FIFO or ASHA, with the best trial
//! reported at the end.

use std::sync::Arc;

use serde_json::{Map, Value};

use crate::algorithm::TrainResult;
use crate::config::Experiment;
use crate::signals::StopRequest;
use crate::trial::{Folder, Reporter, Trial};

/// What `rllib train` adds for a search.
#[derive(Debug, Clone, Default)]
pub struct SearchArgs {
    /// Times to repeat the grid (`--num-samples`).
    pub num_samples: usize,
    /// Trials at once at most (`--max-concurrent-trials`; 0: as the CPUs allow).
    pub max_concurrent_trials: usize,
    /// `fifo` or `asha` (`--scheduler`).
    pub scheduler: Option<String>,
    /// The scheduler's settings, a JSON mapping (`--scheduler-config`).
    pub scheduler_config: Option<String>,
}

/// The metric RLlib's searches compare, as its tuned examples do.
pub const METRIC: &str = "env_runners/episode_return_mean";

fn scheduler(a: &SearchArgs) -> Result<Box<dyn tune::TrialScheduler>, String> {
    let cfg: Map<String, Value> = match &a.scheduler_config {
        None => Map::new(),
        Some(text) => match serde_json::from_str(text) {
            Ok(Value::Object(m)) => m,
            _ => {
                return Err(format!(
                    "--scheduler-config {text:?}: expected a JSON mapping such as '{{\"max_t\": 100, \"grace_period\": 10}}'"
                ));
            }
        },
    };
    let num = |k: &str| -> Result<Option<f64>, String> {
        match cfg.get(k) {
            None => Ok(None),
            Some(v) => v
                .as_f64()
                .map(Some)
                .ok_or_else(|| format!("--scheduler-config: {k}: expected a number, got {v}")),
        }
    };
    match a.scheduler.as_deref().unwrap_or("fifo") {
        "fifo" => {
            if let Some(k) = cfg.keys().next() {
                return Err(format!("--scheduler-config: {k}: FIFO takes no settings"));
            }
            Ok(Box::new(tune::Fifo))
        }
        "asha" => {
            let known = [
                "time_attr",
                "metric",
                "mode",
                "max_t",
                "grace_period",
                "reduction_factor",
                "brackets",
            ];
            if let Some(k) = cfg.keys().find(|k| !known.contains(&k.as_str())) {
                return Err(format!(
                    "--scheduler-config: unknown ASHA setting {k:?} (known: {})",
                    known.join(", ")
                ));
            }
            let mut s = tune::Asha::new();
            if let Some(v) = cfg.get("time_attr") {
                s = s.time_attr(
                    v.as_str()
                        .ok_or("--scheduler-config: time_attr: expected a string")?,
                );
            }
            if let Some(v) = cfg.get("metric") {
                s = s.metric(
                    v.as_str()
                        .ok_or("--scheduler-config: metric: expected a string")?,
                );
            }
            if let Some(v) = cfg.get("mode") {
                let m = v
                    .as_str()
                    .ok_or("--scheduler-config: mode: expected \"max\" or \"min\"")?;
                s = s.mode(m.parse().map_err(|e: tune::TuneError| e.to_string())?);
            }
            if let Some(x) = num("max_t")? {
                s = s.max_t(x);
            }
            if let Some(x) = num("grace_period")? {
                s = s.grace_period(x);
            }
            if let Some(x) = num("reduction_factor")? {
                s = s.reduction_factor(x);
            }
            if let Some(x) = num("brackets")? {
                if !(x >= 1.0 && x.fract() == 0.0) {
                    return Err(format!(
                        "--scheduler-config: brackets {x}: expected an integer >= 1"
                    ));
                }
                s = s.brackets(x as usize);
            }
            Ok(Box::new(s))
        }
        other => Err(format!(
            "--scheduler {other:?}: expected fifo or asha (pbt from the library: tune::Pbt)"
        )),
    }
}

/// A result as Tune's metrics: flat names, NaN as null.
fn metrics(r: &TrainResult) -> Value {
    let mut m = Map::new();
    for (k, v) in &r.metrics {
        m.insert(
            (*k).to_string(),
            if v.is_finite() {
                Value::from(*v)
            } else {
                Value::Null
            },
        );
    }
    Value::Object(m)
}

/// Hands each iteration to Tune and asks whether to go on.
struct ToTune<'a> {
    session: &'a mut tune::Session,
    stopped: Option<String>,
}

impl Reporter for ToTune<'_> {
    fn started(&mut self, _trial: &Trial) {}

    fn result(&mut self, r: &TrainResult, _progress: f64) {
        if self.session.report(metrics(r)).is_err() {
            self.stopped = Some("stopped by Tune".into());
        }
    }

    fn warning(&mut self, message: &str) {
        crate::console::warn(format_args!(
            "warning: trial {}: {message}",
            self.session.trial_id()
        ));
    }

    fn stop(&mut self) -> Option<String> {
        self.stopped.take()
    }
}

/// Runs `exp`'s search through Tune under `output_dir/<experiment>/`; a stop signal (in
/// `signal`) ends the running trials with a checkpoint and starts no more.
pub fn run(
    exp: Experiment,
    output_dir: &std::path::Path,
    args: &SearchArgs,
    signal: &StopRequest,
) -> Result<tune::ResultGrid, String> {
    if exp.address.is_some() {
        return Err(
            "grid_search and --num-samples with --address: not yet; run the search on one machine"
                .into(),
        );
    }
    let mut space = tune::Space::new();
    for g in &exp.grid {
        space = space.set(
            &g.setting,
            tune::grid_search(g.shown.iter().map(|s| Value::from(s.as_str()))),
        );
    }
    // Each trial holds the CPUs its env runners ask for (at least one), at most the machine's;
    // the most any variant asks for, when the grid changes it.
    let cpus = ray::detect_cpus() as f64;
    let mut need = exp.config.num_env_runners as f64 * exp.config.num_cpus_per_env_runner;
    let combos = exp
        .grid
        .iter()
        .fold(1usize, |n, g| n.saturating_mul(g.shown.len()));
    if combos > 4096 {
        need = cpus;
    } else if !exp.grid.is_empty() {
        let picks = exp.grid.iter().fold(vec![Vec::new()], |acc, g| {
            acc.into_iter()
                .flat_map(|p| {
                    (0..g.shown.len()).map(move |i| {
                        let mut q: Vec<usize> = p.clone();
                        q.push(i);
                        q
                    })
                })
                .collect()
        });
        for p in picks {
            if let Ok(v) = exp.variant(&p) {
                need = need.max(v.config.num_env_runners as f64 * v.config.num_cpus_per_env_runner);
            }
        }
    }
    let need = need.max(1.0).min(cpus);
    let base = Arc::new(exp.clone());
    let sig = signal.clone();
    let trainable = tune::function(move |config: &Value, session: &mut tune::Session| {
        let pick: Vec<usize> = base
            .grid
            .iter()
            .map(|g| {
                let chosen = g
                    .setting
                    .split('.')
                    .try_fold(config, |c, k| c.get(k))
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                g.shown.iter().position(|s| s == chosen).unwrap_or(0)
            })
            .collect();
        // After Ctrl-C, trials not yet started do not start.
        if sig.signal().is_some() {
            return Ok(());
        }
        let e = base.variant(&pick).map_err(|e| e.to_string())?;
        let dir = session.trial_dir().to_path_buf();
        let (mut trial, _notes) =
            Trial::start_at(e, Folder::Exactly(&dir), None).map_err(|e| e.to_string())?;
        let mut to_tune = ToTune {
            session,
            stopped: None,
        };
        // A signal ends the trial as a single run's: after this iteration, with a checkpoint.
        trial
            .run(&sig, &mut to_tune)
            .map(|_| ())
            .map_err(|e| e.to_string())
    });
    let tc = tune::TuneConfig {
        metric: Some(METRIC.into()),
        mode: Some(tune::Mode::Max),
        num_samples: args.num_samples.max(1),
        max_concurrent_trials: args.max_concurrent_trials,
        scheduler: scheduler(args)?,
        seed: exp.config.seed.unwrap_or(0),
        time_budget_s: None,
    };
    let rc = tune::RunConfig {
        name: Some(exp.name.clone()),
        storage_path: output_dir.to_path_buf(),
        write_trial_results: false,
        ..tune::RunConfig::default()
    };
    tune::Tuner::new(&exp.run, trainable, space)
        .with_resources([(ray::CPU, need)])
        .tune_config(tc)
        .run_config(rc)
        .fit()
        .map_err(|e| e.to_string())
}
