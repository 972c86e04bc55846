//! One training run, as Tune runs a trial: build the `Algorithm` (or restore it), make the run
//! folder, call `train()` until a stop criterion is met or a stop signal arrives, write every
//! result and the checkpoints at their cadence and at the end.
//!
//! `Algorithm::train()` knows nothing of this; the `rllib` binary is a front end over it.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde_json::Value;

use crate::algorithm::{Algorithm, TrainResult};
use crate::checkpoint::Checkpoint;
use crate::config::export::{config_json, to_yaml};
use crate::config::{Experiment, StopCriterion};
use crate::fsio;
use crate::results::{ResultWriter, new_trial_dir};
use crate::signals::StopRequest;
use crate::state::Counters;

/// Why a trial could not start or go on. The message names the file, key or iteration, and
/// the last good checkpoint when there is one.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TrialError(pub String);

/// What a trial tells its front end as it goes.
pub trait Reporter {
    /// The run folder exists and training is about to start.
    fn started(&mut self, trial: &Trial);
    /// An iteration finished; `progress` is 0..1 towards the nearest stop criterion.
    fn result(&mut self, r: &TrainResult, progress: f64);
    /// Something worth a line (a runner replaced).
    fn warning(&mut self, message: &str);
    /// Why the run must stop now, if it must (Tune's scheduler stopped the trial).
    fn stop(&mut self) -> Option<String> {
        None
    }
}

/// How a trial ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Stop {
    /// A stop criterion was met (`metric = value >= threshold`).
    Criterion(String),
    /// A stop signal arrived (its number).
    Signal(i32),
}

/// The end of a trial.
#[derive(Debug, Clone)]
pub struct TrialEnd {
    /// Why it stopped.
    pub stop: Stop,
    /// The last checkpoint written, if any.
    pub checkpoint: Option<PathBuf>,
    /// The best `env_runners/episode_return_mean` seen.
    pub best_return: f64,
    /// The counters at the end.
    pub counters: Counters,
    /// Wall time from the trial's start.
    pub wall_s: f64,
}

/// Where a trial's run folder goes.
#[derive(Debug, Clone, Copy)]
pub enum Folder<'a> {
    /// A new `<experiment>/<algo>_<env>_<time>` folder under this output folder.
    Under(&'a Path),
    /// This folder (a Tune trial's).
    Exactly(&'a Path),
}

/// A training run in progress.
pub struct Trial {
    exp: Experiment,
    algo: Algorithm,
    dir: PathBuf,
    writer: ResultWriter,
    config: Value,
    started: Instant,
    last_checkpoint: Option<PathBuf>,
    last_saved_iteration: Option<u64>,
}

impl std::fmt::Debug for Trial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trial").field("dir", &self.dir).finish()
    }
}

/// Why a run stopped, if a criterion is met.
pub fn stop_reason(stop: &[StopCriterion], r: &TrainResult) -> Option<String> {
    stop.iter().find_map(|c| {
        let v = r.get(c.metric())?;
        (v.is_finite() && v >= c.threshold())
            .then(|| format!("{} = {v} >= {}", c.metric(), c.threshold()))
    })
}

/// Progress towards the nearest stop criterion, from 0 to 1.
pub fn progress(stop: &[StopCriterion], r: &TrainResult) -> f64 {
    stop.iter()
        .filter_map(|c| {
            let v = r.get(c.metric())?;
            (v.is_finite() && c.threshold() > 0.0).then(|| (v / c.threshold()).clamp(0.0, 1.0))
        })
        .fold(0.0, f64::max)
}

impl Trial {
    /// Builds the algorithm (restoring `restored` into it, whose config the experiment must
    /// already have taken, see [`Experiment::restore_from`]), then creates the run folder under
    /// `output_dir` with `params.yaml` and the result files. Nothing is written to disk
    /// before the config has passed every check.
    pub fn start(
        exp: Experiment,
        output_dir: &Path,
        restored: Option<Checkpoint>,
    ) -> Result<(Self, Vec<String>), TrialError> {
        Self::start_at(exp, Folder::Under(output_dir), restored)
    }

    /// As [`start`](Trial::start), with the run folder given (`Folder::Exactly`: a Tune
    /// trial's folder) or made under an output folder.
    pub fn start_at(
        exp: Experiment,
        folder: Folder<'_>,
        restored: Option<Checkpoint>,
    ) -> Result<(Self, Vec<String>), TrialError> {
        let started = Instant::now();
        let mut notes = Vec::new();
        // A restored run keeps its seed (it seeds replacement env runners) unless one is given.
        let seed = exp
            .config
            .seed
            .or(restored.as_ref().map(|ck| ck.seed))
            .unwrap_or_else(|| envs::NpRandom::from_entropy().next_u64() >> 1);
        let mut algo = Algorithm::new_on(exp.config.clone(), seed, exp.address.as_deref())
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
        let made = match folder {
            Folder::Under(output_dir) => {
                new_trial_dir(output_dir, &exp.name, &exp.run, &exp.config.env)
                    .map_err(|e| (output_dir, e))
            }
            Folder::Exactly(dir) => std::fs::create_dir_all(dir)
                .map(|()| dir.to_path_buf())
                .map_err(|e| (dir, e)),
        };
        let dir = made.map_err(|(at, e)| {
            TrialError(format!(
                "{}: cannot create the run folder: {}",
                at.display(),
                fsio::describe(at, &e)
            ))
        })?;
        let config = config_json(algo.config(), seed);
        let params = dir.join("params.yaml");
        std::fs::write(&params, to_yaml(&config))
            .map_err(|e| TrialError(format!("{}: {e}", params.display())))?;
        let writer =
            ResultWriter::open(&dir).map_err(|e| TrialError(format!("{}: {e}", dir.display())))?;
        Ok((
            Trial {
                exp,
                algo,
                dir,
                writer,
                config,
                started,
                last_checkpoint: None,
                last_saved_iteration: None,
            },
            notes,
        ))
    }

    /// The run folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The experiment.
    pub fn experiment(&self) -> &Experiment {
        &self.exp
    }

    /// The algorithm.
    pub fn algorithm(&self) -> &Algorithm {
        &self.algo
    }

    fn checkpoint(&mut self) -> Result<PathBuf, TrialError> {
        let p = self
            .algo
            .save(&self.dir, Some(&self.exp.name))
            .map_err(|e| TrialError(format!("cannot write a checkpoint: {e}{}", self.kept())))?;
        self.last_checkpoint = Some(p.clone());
        self.last_saved_iteration = Some(self.algo.counters().iteration);
        Ok(p)
    }

    fn kept(&self) -> String {
        self.last_checkpoint
            .as_ref()
            .map(|p| format!("; the last good checkpoint is {}", p.display()))
            .unwrap_or_default()
    }

    /// Trains until a stop criterion is met or `stop` reports a signal, then writes the final
    /// checkpoint (at the end when `checkpoint_at_end`, always after a signal).
    pub fn run(
        &mut self,
        stop: &StopRequest,
        reporter: &mut dyn Reporter,
    ) -> Result<TrialEnd, TrialError> {
        reporter.started(self);
        let mut best = f64::NEG_INFINITY;
        let reason = loop {
            let r = self
                .algo
                .train()
                .map_err(|e| TrialError(format!("training failed: {e}{}", self.kept())))?;
            for w in self.algo.take_warnings() {
                reporter.warning(&w);
            }
            self.writer.write(&r, &self.config).map_err(|e| {
                TrialError(format!(
                    "{}: cannot write results: {e}{}",
                    self.dir.display(),
                    self.kept()
                ))
            })?;
            let ret = r.get("env_runners/episode_return_mean").unwrap_or(f64::NAN);
            if ret.is_finite() {
                best = best.max(ret);
            }
            reporter.result(&r, progress(&self.exp.stop, &r));
            let iter = self.algo.counters().iteration;
            let every = self.exp.checkpoint_frequency;
            if every > 0 && iter.is_multiple_of(every) {
                self.checkpoint()?;
            }
            if let Some(why) = stop_reason(&self.exp.stop, &r) {
                break Stop::Criterion(why);
            }
            if let Some(why) = reporter.stop() {
                break Stop::Criterion(why);
            }
            if let Some(sig) = stop.signal() {
                break Stop::Signal(sig);
            }
        };
        let at_end = self.exp.checkpoint_at_end || matches!(reason, Stop::Signal(_));
        if at_end && self.last_saved_iteration != Some(self.algo.counters().iteration) {
            self.checkpoint()?;
        }
        Ok(TrialEnd {
            stop: reason,
            checkpoint: self.last_checkpoint.clone(),
            best_return: best,
            counters: self.algo.counters(),
            wall_s: self.started.elapsed().as_secs_f64(),
        })
    }
}
