//! One training run before Tune takes it: build the `Algorithm` (or restore it) and only then
//! make the run folder, so that a config that fails a check leaves nothing on disk. The loop
//! (stop criteria, checkpoint cadence, Ctrl-C, result files) is Tune's trial runner's: see
//! [`crate::search::run`].

use std::path::Path;

use serde_json::Value;

use crate::checkpoint::Checkpoint;
use crate::config::{Experiment, StopCriterion};
use crate::fsio;
use crate::results::new_trial_dir;
use crate::search::Prepared;

/// Why a trial could not start or go on. The message names the file, key or iteration, and
/// the last good checkpoint when there is one.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TrialError(pub String);

/// A result's value of `metric`, if it is a finite number.
fn value(r: &tune::Metrics, metric: &str) -> Option<f64> {
    r.get(metric)
        .and_then(Value::as_f64)
        .filter(|v| v.is_finite())
}

/// Why a run stopped, if a criterion is met.
pub fn stop_reason(stop: &[StopCriterion], r: &tune::Metrics) -> Option<String> {
    stop.iter().find_map(|c| {
        let v = value(r, c.metric())?;
        (v >= c.threshold()).then(|| format!("{} = {v} >= {}", c.metric(), c.threshold()))
    })
}

/// Progress towards the nearest stop criterion, from 0 to 1.
pub fn progress(stop: &[StopCriterion], r: &tune::Metrics) -> f64 {
    stop.iter()
        .filter_map(|c| {
            let v = value(r, c.metric())?;
            (c.threshold() > 0.0).then(|| (v / c.threshold()).clamp(0.0, 1.0))
        })
        .fold(0.0, f64::max)
}

/// Builds the algorithm of `exp` (restoring `restored` into it, whose config the experiment
/// must already have taken, see [`Experiment::restore_from`]), then creates the run folder
/// `<output_dir>/<experiment>/<algo>_<env>_<time>`. Returns it with notes worth a line.
pub fn prepare(
    exp: &Experiment,
    output_dir: &Path,
    restored: Option<Checkpoint>,
) -> Result<(Prepared, Vec<String>), TrialError> {
    let mut notes = Vec::new();
    // A restored run keeps its seed (it seeds replacement env runners) unless one is given.
    let seed = exp
        .config
        .seed
        .or(restored.as_ref().map(|ck| ck.seed))
        .unwrap_or_else(|| envs::NpRandom::from_entropy().next_u64() >> 1);
    let mut algo =
        crate::algorithm::Algorithm::new_on(exp.config.clone(), seed, exp.address.as_deref())
            .map_err(|e| TrialError(e.to_string()))?;
    if exp.address.is_some() {
        let placed: Vec<String> = algo
            .runner_nodes()
            .iter()
            .enumerate()
            .map(|(i, n)| format!("EnvRunner-{} on {}", i + 1, n.as_deref().unwrap_or("?")))
            .collect();
        notes.push(format!("Env runners on the cluster: {}", placed.join(", ")));
    }
    if let Some(mut ck) = restored {
        ck.check_env(&exp.config.env)
            .map_err(|e| TrialError(e.to_string()))?;
        let path = ck.path.display().to_string();
        if let Some(w) = algo.restore(&ck).map_err(TrialError)? {
            notes.push(format!("{path}: {w}"));
        }
        notes.push(format!(
            "Restored {path} (iteration {}, {} env steps)",
            ck.counters().iteration,
            ck.counters().env_steps
        ));
    }
    let dir = new_trial_dir(output_dir, &exp.name, &exp.run, &exp.config.env).map_err(|e| {
        TrialError(format!(
            "{}: cannot create the run folder: {}",
            output_dir.display(),
            fsio::describe(output_dir, &e)
        ))
    })?;
    Ok((Prepared { algo, dir }, notes))
}
