//! What Tune runs: a function that gets its config and a [`Session`] to report through
//! (Ray's function trainable, `train.report`), or a type with `setup`/`step`/checkpoints
//! (Ray's class trainable, `tune.Trainable`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{Map, Value};

/// One report: metric names to values (a JSON object).
pub type Metrics = Map<String, Value>;

/// Why a trainable returns early: Tune stopped the trial (a scheduler, a stop criterion, the
/// experiment's time budget, Ctrl-C). Function trainables pass it on with `?`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stopped;

impl std::fmt::Display for Stopped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the trial was stopped by Tune")
    }
}

impl std::error::Error for Stopped {}

/// What a report hands the controller, and what comes back.
#[derive(Debug)]
pub(crate) enum Event {
    Result {
        metrics: Metrics,
        checkpoint: Option<PathBuf>,
    },
    /// The trial's task has started (its resources granted): its clock starts now.
    Started,
    /// The trial's task got its resources after an interrupt and did not start the trainable.
    NotStarted,
    /// A checkpoint written after Tune stopped the trial (at the end, or for an interrupt).
    Checkpoint(PathBuf),
    /// The trainable returned (`Ok`), or failed with this message (an error or a panic).
    Finished(Result<(), String>),
}

/// The controller's answer to a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    Continue,
    Stop,
    /// Stop, and write a last checkpoint first (`checkpoint_at_end`, an interrupt).
    StopAndSave,
}

/// A running trial's link to Tune.
#[derive(Debug)]
pub struct Session {
    pub(crate) trial_id: String,
    pub(crate) trial_dir: PathBuf,
    pub(crate) restored: Option<PathBuf>,
    pub(crate) events: crossbeam_channel::Sender<(usize, Event)>,
    pub(crate) decisions: crossbeam_channel::Receiver<Decision>,
    pub(crate) index: usize,
    pub(crate) staged: Option<PathBuf>,
    pub(crate) stopped: bool,
    pub(crate) save_at_stop: bool,
    pub(crate) checkpoint_frequency: usize,
    /// Results of this trial so far (from its checkpoint's iteration when resumed).
    pub(crate) iteration: u64,
    /// The tuner's runtime (for trainables that start actors: remote trials).
    pub(crate) runtime: Option<ray::Runtime>,
    /// The trial's resources, when its trainable's actor holds them rather than its task.
    pub(crate) resources: Vec<(String, f64)>,
}

impl Session {
    /// Reports one result; `Err(Stopped)` when Tune has stopped the trial (return it).
    pub fn report(&mut self, metrics: Value) -> Result<(), Stopped> {
        self.send(metrics, None)
    }

    /// A fresh folder to write a checkpoint into before
    /// [`report_with_checkpoint`](Session::report_with_checkpoint).
    pub fn checkpoint_dir(&mut self) -> std::io::Result<PathBuf> {
        let d = self.trial_dir.join(".staging");
        if d.exists() {
            std::fs::remove_dir_all(&d)?;
        }
        std::fs::create_dir_all(&d)?;
        self.staged = Some(d.clone());
        Ok(d)
    }

    /// Reports one result with the checkpoint written to [`checkpoint_dir`](Session::checkpoint_dir):
    /// Tune keeps it as `checkpoint_NNNNNN` in the trial's folder (Ray's
    /// `train.report(metrics, checkpoint=...)`).
    pub fn report_with_checkpoint(&mut self, metrics: Value) -> Result<(), Stopped> {
        let staged = self.staged.take();
        self.send(metrics, staged)
    }

    fn send(&mut self, metrics: Value, checkpoint: Option<PathBuf>) -> Result<(), Stopped> {
        if self.stopped {
            return Err(Stopped);
        }
        self.iteration += 1;
        let metrics = match metrics {
            Value::Object(m) => m,
            other => {
                let mut m = Map::new();
                m.insert("value".into(), other);
                m
            }
        };
        if self
            .events
            .send((
                self.index,
                Event::Result {
                    metrics,
                    checkpoint,
                },
            ))
            .is_err()
        {
            self.stopped = true;
            return Err(Stopped);
        }
        match self.decisions.recv() {
            Ok(Decision::Continue) => Ok(()),
            Ok(Decision::StopAndSave) => {
                self.stopped = true;
                self.save_at_stop = true;
                Err(Stopped)
            }
            Ok(Decision::Stop) | Err(_) => {
                self.stopped = true;
                Err(Stopped)
            }
        }
    }

    /// Whether Tune wants a last checkpoint now that it has stopped the trial (the run's
    /// `checkpoint_at_end`, or an interrupt to resume from): write it to
    /// [`checkpoint_dir`](Session::checkpoint_dir) and hand it over with
    /// [`final_checkpoint`](Session::final_checkpoint).
    pub fn should_checkpoint_at_stop(&self) -> bool {
        self.stopped && self.save_at_stop
    }

    /// Forgets a checkpoint begun in [`checkpoint_dir`](Session::checkpoint_dir) and removes
    /// what was written of it.
    pub fn discard_checkpoint(&mut self) {
        if let Some(d) = self.staged.take() {
            let _ = std::fs::remove_dir_all(d);
        }
    }

    /// Hands over the checkpoint written to [`checkpoint_dir`](Session::checkpoint_dir) after
    /// the trial was stopped.
    pub fn final_checkpoint(&mut self) {
        if let Some(staged) = self.staged.take() {
            let _ = self.events.send((self.index, Event::Checkpoint(staged)));
        }
    }

    /// Every how many results the run wants a checkpoint (`RunConfig::checkpoint_frequency`,
    /// 0: never).
    pub fn checkpoint_frequency(&self) -> usize {
        self.checkpoint_frequency
    }

    /// How many results this trial has reported (counted on from the checkpoint it resumed
    /// from, as Tune's `training_iteration`).
    pub fn iteration(&self) -> u64 {
        self.iteration
    }

    /// The checkpoint this trial resumes from (after a failure with `max_failures`, or a
    /// restored experiment), if any.
    pub fn get_checkpoint(&self) -> Option<&Path> {
        self.restored.as_deref()
    }

    /// The trial's id.
    pub fn trial_id(&self) -> &str {
        &self.trial_id
    }

    /// The trial's folder.
    pub fn trial_dir(&self) -> &Path {
        &self.trial_dir
    }
}

/// A class trainable (Ray's `tune.Trainable`): built per trial, stepped until Tune stops it.
pub trait Trainable: Send {
    /// Runs one step (an iteration) and returns its metrics.
    fn step(&mut self) -> Result<Value, String>;

    /// Writes a checkpoint into `dir`; `false` if this trainable has none.
    fn save_checkpoint(&mut self, _dir: &Path) -> Result<bool, String> {
        Ok(false)
    }

    /// Restores from a checkpoint written by [`save_checkpoint`](Trainable::save_checkpoint).
    fn load_checkpoint(&mut self, _dir: &Path) -> Result<(), String> {
        Err("this trainable cannot load checkpoints".into())
    }

    /// Takes a new config in place (PBT); `false` if it must be rebuilt instead.
    fn reset_config(&mut self, _config: &Value) -> bool {
        false
    }
}

/// The body of a trial: a function of its config and session.
pub type TrialFn = Arc<dyn Fn(&Value, &mut Session) -> Result<(), String> + Send + Sync>;

/// A function trainable: `|config, session| { ...; session.report(json!({..}))?; ... }`.
pub fn function<F, E>(f: F) -> TrialFn
where
    F: Fn(&Value, &mut Session) -> Result<(), E> + Send + Sync + 'static,
    E: std::fmt::Display,
{
    Arc::new(move |c, s| {
        f(c, s).or_else(|e| {
            // A trainable that returns Tune's stop is a trial that ended as told.
            if s.stopped {
                Ok(())
            } else {
                Err(e.to_string())
            }
        })
    })
}

/// A class trainable built by `setup(config, session)` (the session gives the trial's
/// folder and id): restored from the checkpoint it resumes from, stepped until Tune stops
/// it, checkpointed every `RunConfig::checkpoint_frequency` results and when Tune asks at the
/// end (`checkpoint_at_end`, an interrupt).
pub fn class<T, F>(setup: F) -> TrialFn
where
    T: Trainable + 'static,
    F: Fn(&Value, &Session) -> Result<T, String> + Send + Sync + 'static,
{
    Arc::new(move |config, session| {
        let mut t = setup(config, session)?;
        if let Some(dir) = session.get_checkpoint().map(Path::to_path_buf) {
            t.load_checkpoint(&dir)?;
        }
        let every = session.checkpoint_frequency() as u64;
        loop {
            let metrics = t.step()?;
            let mut saved = false;
            let iteration = metrics
                .get("training_iteration")
                .and_then(Value::as_f64)
                .filter(|n| *n >= 1.0 && n.fract() == 0.0 && *n < 1e15)
                .map_or(session.iteration() + 1, |n| n as u64);
            if every > 0 && iteration.is_multiple_of(every) {
                let written = session
                    .checkpoint_dir()
                    .map_err(|e| e.to_string())
                    .and_then(|dir| t.save_checkpoint(&dir));
                match written {
                    Ok(s) => saved = s,
                    Err(e) => {
                        // The step's result is kept; then the trial fails (and is retried
                        // from its last checkpoint when `max_failures` allows).
                        session.discard_checkpoint();
                        let _ = session.report(metrics);
                        return Err(e);
                    }
                }
            }
            let sent = if saved {
                session.report_with_checkpoint(metrics)
            } else {
                session.report(metrics)
            };
            if sent.is_err() {
                if session.should_checkpoint_at_stop() && !saved {
                    let written = session
                        .checkpoint_dir()
                        .map_err(|e| e.to_string())
                        .and_then(|dir| t.save_checkpoint(&dir));
                    match written {
                        Ok(true) => session.final_checkpoint(),
                        Ok(false) => session.discard_checkpoint(),
                        Err(e) => {
                            session.discard_checkpoint();
                            return Err(e);
                        }
                    }
                }
                return Ok(());
            }
        }
    })
}
