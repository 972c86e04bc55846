//! The trial runner: makes the trials of a search space, runs each as a runtime task sized by
//! its resources (so as many run at once as the CPUs allow, and on a cluster's nodes when the
//! runtime has one), takes their results, applies stop criteria and the scheduler, retries
//! failures from the last checkpoint, and writes every trial's files.

use std::cell::Cell;
use std::collections::VecDeque;
use std::io::IsTerminal;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::result::{ResultGrid, TrialResult, TrialStatus, TrialWriter};
use crate::scheduler::{Action, Fifo, TrialScheduler};
use crate::search::{Searcher, Suggestion};
use crate::space::{Space, varied};
use crate::trainable::{Decision, Event, Metrics, Session, TrialFn};
use crate::{Mode, TuneError};

/// A line on stdout; a closed or full stdout never stops an experiment.
macro_rules! out {
    ($($t:tt)*) => {{
        use std::io::Write;
        let _ = writeln!(std::io::stdout().lock(), $($t)*);
    }};
}

/// A line on stderr, as [`out`].
macro_rules! err {
    ($($t:tt)*) => {{
        use std::io::Write;
        let _ = writeln!(std::io::stderr().lock(), $($t)*);
    }};
}

/// The experiment's state file, rewritten as it runs (Ray's `experiment_state.json`).
pub const STATE_FILE: &str = "experiment_state.json";

/// A request to stop the experiment early and keep it resumable (Ctrl-C): running trials stop
/// at their next result, no more start, and [`Tuner::restore`] resumes them.
#[derive(Clone)]
pub struct Interrupt(Arc<dyn Fn() -> bool + Send + Sync>);

impl std::fmt::Debug for Interrupt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Interrupt({})", self.is_set())
    }
}

impl Interrupt {
    /// Set when `f` says so (polled a few times a second).
    pub fn new(f: impl Fn() -> bool + Send + Sync + 'static) -> Self {
        Interrupt(Arc::new(f))
    }

    /// Set with `flag`.
    pub fn flag(flag: Arc<AtomicBool>) -> Self {
        Interrupt::new(move || flag.load(Ordering::SeqCst))
    }

    /// Set by SIGINT or SIGTERM, as Ray's Tuner takes Ctrl-C (the process's own handling of
    /// those signals is replaced).
    pub fn on_signals() -> std::io::Result<Self> {
        let flag = Arc::new(AtomicBool::new(false));
        for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            signal_hook::flag::register(sig, Arc::clone(&flag))?;
        }
        Ok(Interrupt::flag(flag))
    }

    /// Whether the experiment has been asked to stop.
    pub fn is_set(&self) -> bool {
        (self.0)()
    }
}

/// A trial as callbacks and loggers see it.
#[derive(Debug, Clone, Copy)]
pub struct TrialInfo<'a> {
    /// Its id.
    pub id: &'a str,
    /// Its folder.
    pub dir: &'a Path,
    /// Its config.
    pub config: &'a Value,
}

/// Hooks into an experiment's progress (Ray Tune's `Callback`), called on the controller's
/// thread in the order things happen.
pub trait Callback: Send + Sync {
    /// A trial's task has started (its resources granted).
    fn on_trial_start(&self, _trial: &TrialInfo<'_>) {}
    /// A trial reported a result (with Tune's fields filled in).
    fn on_trial_result(&self, _trial: &TrialInfo<'_>, _result: &Metrics) {}
    /// A trial ended: `None` when it finished or was stopped, else its error.
    fn on_trial_complete(&self, _trial: &TrialInfo<'_>, _error: Option<&str>) {}
}

/// Writes a trial's results (Ray Tune's logger callbacks: CSV, JSON, TensorBoard).
pub trait TrialLogger: Send {
    /// One result.
    fn result(&mut self, result: &Metrics) -> std::io::Result<()>;
}

/// Makes a trial's logger when it starts: `RunConfig::logger`.
pub type LoggerFactory =
    Arc<dyn Fn(&TrialInfo<'_>) -> std::io::Result<Box<dyn TrialLogger>> + Send + Sync>;

/// Names a trial's folder from its id and config: `RunConfig::trial_dirname`.
pub type DirNameFn = Arc<dyn Fn(&str, &Value) -> String + Send + Sync>;

/// A stop function: `f(trial_id, result)`.
pub type StopFn = Arc<dyn Fn(&str, &Metrics) -> bool + Send + Sync>;

/// When a trial stops by itself: `stop` in Ray's `RunConfig`.
#[derive(Clone, Default)]
pub enum Stop {
    /// Never (the trainable or a scheduler ends it).
    #[default]
    Never,
    /// When any `key` in a result reaches its value (`{"training_iteration": 10}`).
    Criteria(Vec<(String, f64)>),
    /// When `f(trial_id, result)` says so.
    Fn(StopFn),
}

impl std::fmt::Debug for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stop::Never => f.write_str("Never"),
            Stop::Criteria(c) => f.debug_tuple("Criteria").field(c).finish(),
            Stop::Fn(_) => f.write_str("Fn(<closure>)"),
        }
    }
}

impl Stop {
    /// From a JSON mapping of result keys to thresholds.
    pub fn from_json(v: &Value) -> Result<Self, TuneError> {
        let m = v
            .as_object()
            .ok_or_else(|| TuneError::Config(format!("stop: expected a mapping, got {v}")))?;
        let mut c = Vec::new();
        for (k, x) in m {
            let t = x.as_f64().ok_or_else(|| {
                TuneError::Config(format!("stop: {k}: expected a number, got {x}"))
            })?;
            c.push((k.clone(), t));
        }
        Ok(Stop::Criteria(c))
    }

    /// Ray's `TrialPlateauStopper`: a trial stops when the standard deviation of its last
    /// `num_results` values of `metric` is below `std`, after at least `grace_period` results
    /// (and, with a threshold, once the metric is past it: at least it in `max` mode, at most
    /// in `min`).
    pub fn plateau(
        metric: &str,
        std: f64,
        num_results: usize,
        grace_period: usize,
        threshold: Option<(f64, Mode)>,
    ) -> Stop {
        let metric = metric.to_string();
        let window = num_results.max(1);
        let seen = parking_lot::Mutex::new(std::collections::HashMap::<
            String,
            (usize, VecDeque<f64>),
        >::new());
        Stop::Fn(Arc::new(move |trial: &str, r: &Metrics| {
            let Some(v) = r.get(&metric).and_then(Value::as_f64) else {
                return false;
            };
            let mut seen = seen.lock();
            let (n, last) = seen.entry(trial.to_string()).or_default();
            *n += 1;
            last.push_back(v);
            if last.len() > window {
                last.pop_front();
            }
            if *n < grace_period || last.len() < window {
                return false;
            }
            let past = match threshold {
                None => true,
                Some((t, Mode::Max)) => v >= t,
                Some((t, Mode::Min)) => v <= t,
            };
            let mean = last.iter().sum::<f64>() / last.len() as f64;
            let var = last.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / last.len() as f64;
            past && var.sqrt() < std
        }))
    }

    fn met(&self, trial_id: &str, r: &Metrics) -> bool {
        match self {
            Stop::Never => false,
            Stop::Criteria(c) => c
                .iter()
                .any(|(k, t)| r.get(k).and_then(Value::as_f64).is_some_and(|v| v >= *t)),
            Stop::Fn(f) => f(trial_id, r),
        }
    }
}

/// How to search (Ray's `TuneConfig`).
#[derive(Debug)]
pub struct TuneConfig {
    /// The metric to optimise (for the scheduler and the best result).
    pub metric: Option<String>,
    /// Whether higher or lower is better.
    pub mode: Option<Mode>,
    /// Times to repeat the grid (random domains drawn anew each time).
    pub num_samples: usize,
    /// Trials running at once at most (0: as many as the resources allow).
    pub max_concurrent_trials: usize,
    /// Decides after each result whether a trial goes on.
    pub scheduler: Box<dyn TrialScheduler>,
    /// Seed of the random domains.
    pub seed: u64,
    /// The whole experiment's time; trials still running then are stopped.
    pub time_budget_s: Option<f64>,
    /// Where configs come from (default: every variant of the space up front); with a
    /// searcher, `num_samples` is the number of trials.
    pub search_alg: Option<Box<dyn Searcher>>,
}

impl Default for TuneConfig {
    fn default() -> Self {
        TuneConfig {
            metric: None,
            mode: None,
            num_samples: 1,
            max_concurrent_trials: 0,
            scheduler: Box::new(Fifo),
            seed: 0,
            time_budget_s: None,
            search_alg: None,
        }
    }
}

/// Where and how long (Ray's `RunConfig`).
#[derive(Clone)]
pub struct RunConfig {
    /// The experiment's name (default: the trainable's name and the time).
    pub name: Option<String>,
    /// The folder experiments go in.
    pub storage_path: PathBuf,
    /// When a trial stops by itself.
    pub stop: Stop,
    /// Times a failed trial is retried from its last checkpoint.
    pub max_failures: usize,
    /// 0: silent; 1: a line per trial ending and the final table; 2: also every result.
    pub verbose: u8,
    /// Whether Tune writes each trial's `params.json`, `progress.csv` and `result.json`
    /// (off when the trainable writes its own, as RLlib's trials do).
    pub write_trial_results: bool,
    /// Stops the experiment early and keeps it resumable (see [`Interrupt::on_signals`]).
    pub interrupt: Option<Interrupt>,
    /// Seconds between status tables (default: 1 on a terminal, where it is redrawn in place;
    /// 30 otherwise).
    pub status_interval_s: Option<f64>,
    /// A class trainable's checkpoint every this many results (0: none; Ray's
    /// `CheckpointConfig.checkpoint_frequency`).
    pub checkpoint_frequency: usize,
    /// A last checkpoint when a trial is stopped (Ray's `checkpoint_at_end`).
    pub checkpoint_at_end: bool,
    /// Writes each trial's results instead of Tune's `progress.csv`/`result.json`.
    pub logger: Option<LoggerFactory>,
    /// Names trial folders instead of `<trainable>_<id>_<varied params>`.
    pub trial_dirname: Option<DirNameFn>,
    /// Hooks called as trials start, report and end.
    pub callbacks: Vec<Arc<dyn Callback>>,
    /// Whether the experiment's folder gets `experiment_state.json` (what
    /// [`Tuner::restore`] resumes from) and `results.csv`.
    pub write_experiment_state: bool,
}

impl std::fmt::Debug for RunConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunConfig")
            .field("name", &self.name)
            .field("storage_path", &self.storage_path)
            .field("stop", &self.stop)
            .field("max_failures", &self.max_failures)
            .field("checkpoint_frequency", &self.checkpoint_frequency)
            .field("checkpoint_at_end", &self.checkpoint_at_end)
            .finish_non_exhaustive()
    }
}

impl Default for RunConfig {
    fn default() -> Self {
        RunConfig {
            name: None,
            storage_path: PathBuf::from("ray_results"),
            stop: Stop::Never,
            max_failures: 0,
            verbose: 1,
            write_trial_results: true,
            interrupt: None,
            status_interval_s: None,
            checkpoint_frequency: 0,
            checkpoint_at_end: false,
            logger: None,
            trial_dirname: None,
            callbacks: Vec::new(),
            write_experiment_state: true,
        }
    }
}

/// Runs a trainable over a search space (Ray's `tune.Tuner`).
pub struct Tuner {
    trainable: TrialFn,
    trainable_name: String,
    space: Space,
    resources: Vec<(String, f64)>,
    tune: TuneConfig,
    run: RunConfig,
    runtime: Option<ray::Runtime>,
    restored: Option<Restored>,
    /// Lines of the status table on the terminal now.
    drawn: Cell<usize>,
    /// Whether the trainable's actors hold the trials' resources (`remote_class`).
    remote: bool,
}

/// What a restored experiment had made.
struct Restored {
    trials: Vec<Trial>,
    tag: String,
}

/// `experiment_state.json`.
#[derive(serde::Serialize, serde::Deserialize)]
struct SavedExperiment {
    trainable: String,
    tag: String,
    /// Whether the experiment ran to its end (false while running or after an interrupt).
    finished: bool,
    settings: Settings,
    trials: Vec<SavedTrial>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Settings {
    metric: Option<String>,
    mode: Option<Mode>,
    num_samples: usize,
    max_concurrent_trials: usize,
    seed: u64,
    time_budget_s: Option<f64>,
    stop: Option<Vec<(String, f64)>>,
    max_failures: usize,
    verbose: u8,
    write_trial_results: bool,
    resources: Vec<(String, f64)>,
    #[serde(default)]
    checkpoint_frequency: usize,
    #[serde(default)]
    checkpoint_at_end: bool,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct SavedTrial {
    trial_id: String,
    status: TrialStatus,
    config: Value,
    /// The trial's folder, relative to the experiment's.
    path: PathBuf,
    /// Its latest checkpoint, relative to the experiment's folder (a PBT trial's may be in
    /// another trial's folder).
    checkpoint: Option<PathBuf>,
    num_results: u64,
    time_total_s: f64,
    failures: usize,
    stopped_early: bool,
    last_result: Option<Metrics>,
    error: Option<String>,
}

impl std::fmt::Debug for Tuner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tuner")
            .field("trainable", &self.trainable_name)
            .field("space", &self.space)
            .finish()
    }
}

/// Where one trial stands while the experiment runs.
struct Trial {
    id: String,
    config: Value,
    dir: PathBuf,
    writer: Option<Box<dyn TrialLogger>>,
    decisions: Option<crossbeam_channel::Sender<Decision>>,
    last: Option<Metrics>,
    iteration: u64,
    last_report: Option<Instant>,
    time_total: f64,
    checkpoint: Option<PathBuf>,
    failures: usize,
    status: TrialStatus,
    error: Option<String>,
    /// A failure no retry can mend (the experiment's metric missing from its results).
    fatal: Option<String>,
    /// PBT: the checkpoint and config to go on with once the trainable has stopped.
    exploit: Option<(PathBuf, Value)>,
    stopped_early: bool,
    /// Stopped by an interrupt: pending again, for a restore.
    interrupted: bool,
    /// Whether it has reported since its task started.
    reported: bool,
}

impl Trial {
    fn info(&self) -> TrialInfo<'_> {
        TrialInfo {
            id: &self.id,
            dir: &self.dir,
            config: &self.config,
        }
    }

    fn ended(&self) -> bool {
        matches!(self.status, TrialStatus::Terminated | TrialStatus::Error)
    }
}

impl Tuner {
    /// A tuner of `trainable` (named `name` in folders and tables) over `param_space`.
    pub fn new(name: &str, trainable: TrialFn, param_space: impl Into<Space>) -> Self {
        Tuner {
            trainable,
            trainable_name: name.to_string(),
            space: param_space.into(),
            resources: vec![(ray::CPU.to_string(), 1.0)],
            tune: TuneConfig::default(),
            run: RunConfig::default(),
            runtime: None,
            restored: None,
            drawn: Cell::new(0),
            remote: false,
        }
    }

    /// The search settings.
    pub fn tune_config(mut self, c: TuneConfig) -> Self {
        self.tune = c;
        self
    }

    /// The run settings.
    pub fn run_config(mut self, c: RunConfig) -> Self {
        self.run = c;
        self
    }

    /// Each trial's resources (`tune.with_resources`; default one CPU), e.g.
    /// `[("CPU", 0.5)]`.
    pub fn with_resources<'a>(mut self, r: impl IntoIterator<Item = (&'a str, f64)>) -> Self {
        self.resources = r.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        self
    }

    /// The trials' resources go to the actors of a [`remote_class`](crate::remote_class)
    /// trainable (on a cluster's nodes), not to the tasks that step them; as many trials run
    /// at once as the cluster's resources allow.
    pub fn remote_trials(mut self, remote: bool) -> Self {
        self.remote = remote;
        self
    }

    /// The runtime to run trials on (default: a new local one with this machine's CPUs).
    pub fn runtime(mut self, rt: ray::Runtime) -> Self {
        self.runtime = Some(rt);
        self
    }

    /// Resumes the experiment in `path` (a folder with `experiment_state.json`, left by an
    /// interrupted or crashed `fit`), as Ray's `Tuner.restore(path, trainable)`: trials that
    /// ended keep their results; the others run again from their latest checkpoints (from the
    /// start without one). The settings are the experiment's (its stop mapping, metric,
    /// resources, ...); a stop function, a scheduler or a searcher cannot be saved: give them
    /// again with [`run_config`](Tuner::run_config) / [`tune_config`](Tuner::tune_config)
    /// (and the searcher's space with [`param_space`](Tuner::param_space)).
    pub fn restore(path: impl AsRef<Path>, trainable: TrialFn) -> Result<Tuner, TuneError> {
        let exp = path.as_ref().to_path_buf();
        let file = exp.join(STATE_FILE);
        let text = std::fs::read_to_string(&file).map_err(|e| TuneError::Io(file.clone(), e))?;
        let bad = |what: String| {
            TuneError::Config(format!(
                "{}: not an experiment state: {what}",
                file.display()
            ))
        };
        let st: SavedExperiment = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
        let name = exp
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .ok_or_else(|| bad("the folder has no name".into()))?;
        let s = st.settings;
        let trials = st
            .trials
            .into_iter()
            .map(|t| {
                let dir = exp.join(&t.path);
                Trial {
                    id: t.trial_id,
                    config: t.config,
                    writer: None,
                    decisions: None,
                    last: t.last_result,
                    iteration: t.num_results,
                    last_report: None,
                    time_total: t.time_total_s,
                    checkpoint: t.checkpoint.map(|c| exp.join(c)),
                    dir,
                    failures: t.failures,
                    status: match t.status {
                        TrialStatus::Running => TrialStatus::Pending,
                        other => other,
                    },
                    error: t.error,
                    fatal: None,
                    exploit: None,
                    stopped_early: t.stopped_early,
                    interrupted: false,
                    reported: false,
                }
            })
            .collect();
        let tune = TuneConfig {
            metric: s.metric,
            mode: s.mode,
            num_samples: s.num_samples,
            max_concurrent_trials: s.max_concurrent_trials,
            seed: s.seed,
            time_budget_s: s.time_budget_s,
            ..TuneConfig::default()
        };
        let run = RunConfig {
            name: Some(name),
            storage_path: exp.parent().map(Path::to_path_buf).unwrap_or_default(),
            stop: s.stop.map_or(Stop::Never, Stop::Criteria),
            max_failures: s.max_failures,
            verbose: s.verbose,
            write_trial_results: s.write_trial_results,
            checkpoint_frequency: s.checkpoint_frequency,
            checkpoint_at_end: s.checkpoint_at_end,
            ..RunConfig::default()
        };
        Ok(Tuner {
            trainable,
            trainable_name: st.trainable,
            space: Space::new(),
            resources: s.resources,
            tune,
            run,
            runtime: None,
            restored: Some(Restored {
                trials,
                tag: st.tag,
            }),
            drawn: Cell::new(0),
            remote: false,
        })
    }

    /// The space a searcher searches (on a restored experiment: the one it was given).
    pub fn param_space(mut self, space: impl Into<Space>) -> Self {
        self.space = space.into();
        self
    }

    /// Runs the experiment to its end (or until interrupted) and returns every trial.
    pub fn fit(mut self) -> Result<ResultGrid, TuneError> {
        self.tune
            .scheduler
            .set_search_properties(self.tune.metric.as_deref(), self.tune.mode);
        self.tune.scheduler.validate()?;
        if self.tune.num_samples == 0 {
            return Err(TuneError::Config("num_samples must be >= 1".into()));
        }
        if let Some(b) = self.tune.time_budget_s
            && !(b > 0.0 && b.is_finite())
        {
            return Err(TuneError::Config(format!(
                "time_budget_s {b}: expected seconds > 0"
            )));
        }
        for (k, v) in &self.resources {
            if !(v.is_finite() && *v >= 0.0) {
                return Err(TuneError::Config(format!(
                    "with_resources: {k} = {v}, expected an amount >= 0"
                )));
            }
        }
        let restored = self.restored.take();
        let mut searcher = self.tune.search_alg.take();
        // Without a searcher, every variant up front (Ray's basic variant generator); with
        // one, `num_samples` trials asked for one at a time.
        let configs = match (&mut searcher, &restored) {
            (_, Some(_)) => Vec::new(),
            (None, None) => self.space.variants(self.tune.num_samples, self.tune.seed)?,
            (Some(s), None) => {
                s.set_search_properties(self.tune.metric.as_deref(), self.tune.mode);
                s.setup(&self.space, self.tune.num_samples, self.tune.seed)?;
                Vec::new()
            }
        };
        let rt = match self.runtime.take() {
            Some(rt) => rt,
            None => ray::init(ray::InitOptions::new()).map_err(TuneError::Runtime)?,
        };
        let name = self
            .run
            .name
            .clone()
            .unwrap_or_else(|| format!("{}_{}", self.trainable_name, timestamp()));
        check_name(&name)?;
        let exp = self.run.storage_path.join(&name);
        std::fs::create_dir_all(&exp).map_err(|e| TuneError::Io(exp.clone(), e))?;
        let restored_run = restored.is_some();
        let (tag, mut trials) = match restored {
            Some(r) => (r.tag, r.trials),
            // Unique per experiment, so that two runs under one name never share a folder.
            None => (new_tag(), Vec::new()),
        };
        if let Some(s) = &mut searcher
            && restored_run
        {
            // A restored experiment's searcher goes on from the trials it had made.
            s.set_search_properties(self.tune.metric.as_deref(), self.tune.mode);
            s.setup(&self.space, self.tune.num_samples, self.tune.seed)?;
            let made: Vec<(Value, Option<Metrics>, bool)> = trials
                .iter()
                .map(|t| (t.config.clone(), t.last.clone(), t.ended()))
                .collect();
            s.restore(&made);
        }
        for config in configs {
            let t = self.new_trial(&exp, &tag, trials.len(), config);
            trials.push(t);
        }
        let (events_tx, events) = crossbeam_channel::unbounded::<(usize, Event)>();
        let mut pending: VecDeque<usize> =
            (0..trials.len()).filter(|&i| !trials[i].ended()).collect();
        let mut running = 0usize;
        let start = Instant::now();
        let budget = self.tune.time_budget_s.map(Duration::from_secs_f64);
        let mut out_of_time = false;
        let mut interrupted = false;
        let mut searcher_done = searcher.is_none();
        // Trials holding no CPU would all start at once, each on a thread of its own; a few per
        // CPU keep the CPUs busy (as Ray caps its pending trials).
        let cpus = rt.cluster_resources().get(ray::CPU).max(1.0);
        let holds_cpu = self
            .resources
            .iter()
            .any(|(k, v)| k == ray::CPU && *v > 0.0);
        let mut cap = match self.tune.max_concurrent_trials {
            0 if holds_cpu && !self.remote => usize::MAX,
            0 => (4.0 * cpus) as usize,
            n => n,
        };
        if self.remote || searcher.is_some() {
            // Remote actors wait for a node with room only so long, and a searcher learns
            // from each result: start no more trials than the resources fit at once.
            let total = rt.cluster_resources();
            for (k, v) in &self.resources {
                if *v > 0.0 {
                    cap = cap.min(((total.get(k) / v) + 1e-9).floor().max(1.0) as usize);
                }
            }
        }
        let tty = std::io::stdout().is_terminal();
        let table_every = Duration::from_secs_f64(match self.run.status_interval_s {
            Some(s) => s.max(0.05),
            None if tty => 1.0,
            None => 30.0,
        });
        let mut last_table = Instant::now();
        let mut last_saved = Instant::now();
        loop {
            if !interrupted && self.run.interrupt.as_ref().is_some_and(Interrupt::is_set) {
                interrupted = true;
                self.say(
                    1,
                    format!(
                        "Interrupted: the running trials stop at their next result with a checkpoint, no more start; the experiment in {} can be resumed",
                        exp.display()
                    ),
                );
            }
            while !out_of_time && !interrupted && running < cap {
                let i = match pending.pop_front() {
                    Some(i) => i,
                    None if searcher_done => break,
                    None => match searcher.as_mut().map(|s| s.suggest(trials.len())) {
                        Some(Suggestion::Config(c)) => {
                            let t = self.new_trial(&exp, &tag, trials.len(), c);
                            trials.push(t);
                            trials.len() - 1
                        }
                        Some(Suggestion::Wait) => break,
                        Some(Suggestion::Done) | None => {
                            searcher_done = true;
                            break;
                        }
                    },
                };
                match self.launch(&rt, &mut trials[i], i, &events_tx) {
                    Ok(()) => running += 1,
                    // This trial cannot start (its folder, the runtime); the others go on.
                    Err(e) => {
                        let t = &mut trials[i];
                        t.status = TrialStatus::Error;
                        self.say(1, format!("Trial {} ERROR: {e}", t.id));
                        t.error = Some(e.to_string());
                        if let Some(s) = &mut searcher {
                            s.on_trial_complete(i, None, true);
                        }
                    }
                }
            }
            if running == 0 {
                break;
            }
            if self.run.verbose >= 1 && last_table.elapsed() >= table_every {
                self.draw_table(&trials, start, tty);
                last_table = Instant::now();
            }
            if last_saved.elapsed() >= Duration::from_secs(1) {
                let _ = self.save_state(&exp, &tag, &trials, false);
                last_saved = Instant::now();
            }
            let mut wait = match budget {
                // Out of time: the trials stop at their next report; wait for it.
                Some(b) if !out_of_time => b
                    .saturating_sub(start.elapsed())
                    .max(Duration::from_millis(1)),
                _ => Duration::from_secs(3600),
            };
            if self.run.verbose >= 1 {
                wait = wait.min(table_every.saturating_sub(last_table.elapsed()));
            }
            if self.run.interrupt.is_some() && !interrupted {
                wait = wait.min(Duration::from_millis(100));
            }
            let (i, ev) = match events.recv_timeout(wait.max(Duration::from_millis(1))) {
                Ok(x) => x,
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                    if budget.is_some_and(|b| start.elapsed() >= b) {
                        out_of_time = true;
                    }
                    continue;
                }
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
            };
            if budget.is_some_and(|b| start.elapsed() >= b) {
                out_of_time = true;
            }
            match ev {
                Event::Started => {
                    let t = &mut trials[i];
                    t.status = TrialStatus::Running;
                    t.last_report = Some(Instant::now());
                    for c in &self.run.callbacks {
                        c.on_trial_start(&t.info());
                    }
                }
                Event::NotStarted => {
                    running -= 1;
                    let t = &mut trials[i];
                    t.decisions = None;
                    t.status = TrialStatus::Pending;
                }
                Event::Checkpoint(staged) => {
                    let t = &mut trials[i];
                    let dest = t.dir.join(format!("checkpoint_{:06}", t.iteration));
                    let _ = std::fs::remove_dir_all(&dest);
                    if std::fs::rename(&staged, &dest).is_ok() {
                        t.checkpoint = Some(dest);
                    }
                }
                Event::Result {
                    metrics,
                    checkpoint,
                } => {
                    if !interrupted && self.run.interrupt.as_ref().is_some_and(Interrupt::is_set) {
                        interrupted = true;
                    }
                    let (mut decision, exploit) =
                        self.on_result(&mut trials[i], i, metrics, checkpoint, out_of_time);
                    // PBT: continue from another trial's checkpoint with its config, perturbed
                    // (not once interrupted: the trial then stops with its own checkpoint).
                    if let Some(src) = exploit.filter(|&s| s != i && !interrupted)
                        && let Some(ck) = trials[src].checkpoint.clone()
                    {
                        let config = self.tune.scheduler.explore(&trials[src].config);
                        let line = format!(
                            "iteration {}: clone {} ({}) from {}, config {} -> {}\n",
                            trials[i].iteration,
                            trials[src].id,
                            ck.display(),
                            trials[i].id,
                            trials[i].config,
                            config
                        );
                        self.say(2, format!("Trial {} {line}", trials[i].id));
                        append(&trials[i].dir.join("pbt_policy.txt"), &line);
                        trials[i].exploit = Some((ck, config));
                        decision = Decision::Stop;
                    }
                    if interrupted && decision == Decision::Continue {
                        // A last checkpoint to resume from.
                        trials[i].interrupted = true;
                        decision = Decision::StopAndSave;
                    }
                    if let Some(d) = &trials[i].decisions {
                        let _ = d.send(decision);
                    }
                }
                Event::Finished(outcome) => {
                    running -= 1;
                    let t = &mut trials[i];
                    t.decisions = None;
                    let fatal = t.fatal.is_some();
                    let retries_left = !fatal && t.failures < self.run.max_failures;
                    let outcome = match t.fatal.take() {
                        Some(e) => Err(e),
                        None => outcome,
                    };
                    if let (Ok(()), Some((ck, config))) = (&outcome, t.exploit.take()) {
                        // Back in the queue, from the cloned checkpoint with the new config.
                        t.config = config;
                        t.checkpoint = Some(ck);
                        t.status = TrialStatus::Pending;
                        if self.run.write_trial_results {
                            let _ = std::fs::write(
                                t.dir.join("params.json"),
                                serde_json::to_string_pretty(&t.config).unwrap_or_default(),
                            );
                        }
                        pending.push_front(i);
                        continue;
                    }
                    if t.interrupted && outcome.is_ok() {
                        // Stopped for the interrupt: pending again, resumed by a restore.
                        t.status = TrialStatus::Pending;
                        continue;
                    }
                    if interrupted && outcome.is_err() && !fatal && !t.reported {
                        // A trainable that refused to start because of the interrupt.
                        t.status = TrialStatus::Pending;
                        continue;
                    }
                    match outcome {
                        Ok(()) => {
                            t.status = TrialStatus::Terminated;
                            for c in &self.run.callbacks {
                                c.on_trial_complete(&t.info(), None);
                            }
                            self.tune.scheduler.on_complete(i);
                            self.say(
                                1,
                                format!("Trial {} TERMINATED after {} results", t.id, t.iteration),
                            );
                            if let Some(s) = &mut searcher {
                                s.on_trial_complete(i, t.last.as_ref(), false);
                            }
                        }
                        Err(e) if retries_left && !interrupted => {
                            t.failures += 1;
                            t.status = TrialStatus::Pending;
                            self.say(
                                1,
                                format!(
                                    "Trial {} failed ({}/{} retries), retrying{}: {e}",
                                    t.id,
                                    t.failures,
                                    self.run.max_failures,
                                    if t.checkpoint.is_some() {
                                        " from its checkpoint"
                                    } else {
                                        ""
                                    }
                                ),
                            );
                            pending.push_front(i);
                        }
                        Err(e) => {
                            t.status = TrialStatus::Error;
                            let _ = std::fs::create_dir_all(&t.dir);
                            let _ = std::fs::write(t.dir.join("error.txt"), format!("{e}\n"));
                            self.tune.scheduler.on_complete(i);
                            self.say(1, format!("Trial {} ERROR: {e}", t.id));
                            for c in &self.run.callbacks {
                                c.on_trial_complete(&t.info(), Some(&e));
                            }
                            t.error = Some(e);
                            if let Some(s) = &mut searcher {
                                s.on_trial_complete(i, t.last.as_ref(), true);
                            }
                        }
                    }
                }
            }
        }
        self.erase_table();
        let finished = !interrupted;
        // The trials have ended: a bookkeeping file that cannot be written is a warning, not
        // a failed experiment.
        if let Err(e) = self.save_state(&exp, &tag, &trials, finished) {
            err!("tune: {}: {e}", exp.join(STATE_FILE).display());
        }
        let grid = ResultGrid {
            results: trials
                .into_iter()
                .map(|t| TrialResult {
                    trial_id: t.id,
                    config: t.config,
                    metrics: t.last,
                    path: t.dir,
                    status: t.status,
                    error: t.error,
                    checkpoint: t.checkpoint,
                    num_results: t.iteration as usize,
                    stopped_early: t.stopped_early,
                })
                .collect(),
            experiment_path: exp.clone(),
            metric: self.tune.metric.clone(),
            mode: self.tune.mode,
            interrupted,
        };
        if self.run.write_experiment_state
            && let Err(e) = grid.write_csv(&exp.join("results.csv"))
        {
            err!("tune: {}: {e}", exp.join("results.csv").display());
        }
        if self.run.verbose >= 1 {
            self.print_table(&grid);
        }
        Ok(grid)
    }

    /// A new trial numbered `i`, named after the values its config varies.
    fn new_trial(&self, exp: &Path, tag: &str, i: usize, config: Value) -> Trial {
        let id = format!("{tag}_{i:05}");
        let params: Vec<String> = varied(&self.space, &config)
            .into_iter()
            .map(|(k, v)| format!("{}={}", k.rsplit('.').next().unwrap_or(&k), short(&v)))
            .collect();
        let dir_name = match &self.run.trial_dirname {
            Some(f) => match sanitize(&f(&id, &config)) {
                n if n.is_empty() || n.chars().all(|c| c == '.') => {
                    format!("{}_{id}", self.trainable_name)
                }
                n => n,
            },
            None if params.is_empty() => format!("{}_{id}", self.trainable_name),
            None => format!(
                "{}_{id}_{}",
                self.trainable_name,
                sanitize(&params.join(","))
            ),
        };
        Trial {
            id,
            config,
            dir: exp.join(dir_name),
            writer: None,
            decisions: None,
            last: None,
            iteration: 0,
            last_report: None,
            time_total: 0.0,
            checkpoint: None,
            failures: 0,
            status: TrialStatus::Pending,
            error: None,
            fatal: None,
            exploit: None,
            stopped_early: false,
            interrupted: false,
            reported: false,
        }
    }

    /// Writes `experiment_state.json` (atomically): the settings and every trial, so that
    /// [`Tuner::restore`] can resume the experiment.
    fn save_state(
        &self,
        exp: &Path,
        tag: &str,
        trials: &[Trial],
        finished: bool,
    ) -> std::io::Result<()> {
        let rel = |p: &Path, base: &Path| {
            p.strip_prefix(base)
                .map_or_else(|_| p.to_path_buf(), Path::to_path_buf)
        };
        let saved = SavedExperiment {
            trainable: self.trainable_name.clone(),
            tag: tag.to_string(),
            finished,
            settings: Settings {
                metric: self.tune.metric.clone(),
                mode: self.tune.mode,
                num_samples: self.tune.num_samples,
                max_concurrent_trials: self.tune.max_concurrent_trials,
                seed: self.tune.seed,
                time_budget_s: self.tune.time_budget_s,
                stop: match &self.run.stop {
                    Stop::Criteria(c) => Some(c.clone()),
                    _ => None,
                },
                max_failures: self.run.max_failures,
                verbose: self.run.verbose,
                write_trial_results: self.run.write_trial_results,
                resources: self.resources.clone(),
                checkpoint_frequency: self.run.checkpoint_frequency,
                checkpoint_at_end: self.run.checkpoint_at_end,
            },
            trials: trials
                .iter()
                .map(|t| SavedTrial {
                    trial_id: t.id.clone(),
                    status: t.status,
                    config: t.config.clone(),
                    path: rel(&t.dir, exp),
                    checkpoint: t.checkpoint.as_deref().map(|c| rel(c, exp)),
                    num_results: t.iteration,
                    time_total_s: t.time_total,
                    failures: t.failures,
                    stopped_early: t.stopped_early,
                    last_result: t.last.clone(),
                    error: t.error.clone(),
                })
                .collect(),
        };
        if !self.run.write_experiment_state {
            return Ok(());
        }
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let p = exp.join(STATE_FILE);
        let tmp = exp.join(format!(
            ".{STATE_FILE}.{}-{}.tmp",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let written = std::fs::write(&tmp, serde_json::to_string_pretty(&saved)?)
            .and_then(|()| std::fs::rename(&tmp, p));
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        written
    }

    fn say(&self, level: u8, line: String) {
        if self.run.verbose >= level {
            self.erase_table();
            out!("{line}");
        }
    }

    /// Takes the live status table off the terminal (before other lines are printed).
    fn erase_table(&self) {
        let n = self.drawn.replace(0);
        if n > 0 {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            let _ = write!(out, "\x1b[{n}F\x1b[J");
            let _ = out.flush();
        }
    }

    /// Tune's status table: counts by status, then a row per trial (its varied parameters,
    /// iterations and metric), redrawn in place on a terminal and printed plainly otherwise.
    fn draw_table(&self, trials: &[Trial], start: Instant, tty: bool) {
        use std::io::Write;
        let mut counts = std::collections::BTreeMap::<String, usize>::new();
        for t in trials {
            *counts.entry(t.status.to_string()).or_default() += 1;
        }
        let mut lines = vec![format!(
            "== Status: {} trials ({}) | {:.0} s ==",
            trials.len(),
            counts
                .iter()
                .map(|(s, n)| format!("{n} {s}"))
                .collect::<Vec<_>>()
                .join(", "),
            start.elapsed().as_secs_f64()
        )];
        let metric = self.tune.metric.as_deref();
        // Running trials first, then the others, at most 20 rows.
        let mut order: Vec<&Trial> = trials.iter().collect();
        order.sort_by_key(|t| t.status != TrialStatus::Running);
        for t in order.iter().take(20) {
            let params: Vec<String> = varied(&self.space, &t.config)
                .into_iter()
                .map(|(k, v)| format!("{}={}", k.rsplit('.').next().unwrap_or(&k), short(&v)))
                .collect();
            let m = metric
                .and_then(|m| {
                    let v = t.last.as_ref()?.get(m)?.as_f64()?;
                    Some(format!("{m}={v:.4}"))
                })
                .unwrap_or_default();
            lines.push(format!(
                "  {:<12} {:<10} iter {:<5} {:<40} {m}",
                t.id,
                t.status.to_string(),
                t.iteration,
                params.join(", ")
            ));
        }
        if trials.len() > 20 {
            lines.push(format!("  ... and {} more", trials.len() - 20));
        }
        self.erase_table();
        let mut out = std::io::stdout().lock();
        for l in &lines {
            let _ = writeln!(out, "{l}");
        }
        let _ = out.flush();
        if tty {
            self.drawn.set(lines.len());
        }
    }

    /// Starts trial `i` as a runtime task holding its resources.
    fn launch(
        &self,
        rt: &ray::Runtime,
        t: &mut Trial,
        i: usize,
        events: &crossbeam_channel::Sender<(usize, Event)>,
    ) -> Result<(), TuneError> {
        if t.writer.is_none() {
            let info = TrialInfo {
                id: &t.id,
                dir: &t.dir,
                config: &t.config,
            };
            let opened = match &self.run.logger {
                Some(make) => std::fs::create_dir_all(&t.dir)
                    .and_then(|()| make(&info))
                    .map(Some),
                None if self.run.write_trial_results => TrialWriter::open(&t.dir, &t.config)
                    .map(|w| Some(Box::new(w) as Box<dyn TrialLogger>)),
                None => Ok(None),
            };
            t.writer = opened.map_err(|e| TuneError::Io(t.dir.clone(), e))?;
        }
        let (dtx, drx) = crossbeam_channel::bounded(1);
        t.decisions = Some(dtx);
        t.reported = false;
        // A restarted trial counts on from its checkpoint (0 without one), as Ray's does.
        t.iteration = checkpoint_iteration(t.checkpoint.as_deref());
        let session = parking_lot::Mutex::new(Some(Session {
            trial_id: t.id.clone(),
            trial_dir: t.dir.clone(),
            restored: t.checkpoint.clone(),
            events: events.clone(),
            decisions: drx,
            index: i,
            staged: None,
            stopped: false,
            save_at_stop: false,
            checkpoint_frequency: self.run.checkpoint_frequency,
            iteration: t.iteration,
            runtime: Some(rt.clone()),
            resources: if self.remote {
                self.resources.clone()
            } else {
                Vec::new()
            },
        }));
        let f = Arc::clone(&self.trainable);
        let config = t.config.clone();
        let interrupt = self.run.interrupt.clone();
        // A task the runtime drops unrun (shut down) still tells the controller.
        let finished = parking_lot::Mutex::new(Some(FinishGuard {
            events: events.clone(),
            index: i,
            sent: false,
        }));
        let mut task = rt
            .task(move || {
                // The task runs once (no retries: Tune's own max_failures decides).
                let (Some(mut s), Some(mut done)) = (session.lock().take(), finished.lock().take())
                else {
                    return;
                };
                // Waited for resources past an interrupt: it does not start (still pending).
                if interrupt.as_ref().is_some_and(Interrupt::is_set) {
                    done.sent = true;
                    let _ = done.events.send((i, Event::NotStarted));
                    return;
                }
                let _ = done.events.send((i, Event::Started));
                let out = catch_unwind(AssertUnwindSafe(|| f(&config, &mut s)))
                    .unwrap_or_else(|p| Err(format!("panicked: {}", ray::panic_message(&*p))));
                done.sent = true;
                let _ = done.events.send((i, Event::Finished(out)));
            })
            .name(format!("{}_{}", self.trainable_name, t.id))
            .max_retries(0);
        // A remote trial's actor holds its resources; its task here only steps it.
        if self.remote {
            task = task.resource(ray::CPU, 0.0);
        } else {
            for (k, v) in &self.resources {
                task = task.resource(k, *v);
            }
        }
        task.remote().map_err(TuneError::Runtime)?;
        Ok(())
    }

    /// Takes one result: fills Tune's own fields, writes it, and decides.
    fn on_result(
        &mut self,
        t: &mut Trial,
        i: usize,
        mut metrics: Metrics,
        checkpoint: Option<PathBuf>,
        out_of_time: bool,
    ) -> (Decision, Option<usize>) {
        let now = Instant::now();
        t.reported = true;
        let this_iter = t.last_report.map_or(0.0, |l| (now - l).as_secs_f64());
        t.last_report = Some(now);
        // The trainable's own count when it keeps one (a run restored by the trainable itself
        // goes on from its checkpoint's iteration), else Tune's.
        t.iteration = match metrics.get("training_iteration").and_then(Value::as_f64) {
            Some(n) if n >= 1.0 && n.fract() == 0.0 && n < 1e15 => n as u64,
            _ => t.iteration + 1,
        };
        t.time_total += this_iter;
        // Tune's auto-filled fields, where the trainable did not set them.
        let auto = [
            ("training_iteration", json!(t.iteration)),
            ("time_this_iter_s", json!(this_iter)),
            ("time_total_s", json!(t.time_total)),
            ("trial_id", json!(t.id)),
            ("timestamp", json!(unix_time())),
            ("pid", json!(std::process::id())),
        ];
        for (k, v) in auto {
            metrics.entry(k).or_insert(v);
        }
        if let Some(staged) = checkpoint {
            let dest = t.dir.join(format!("checkpoint_{:06}", t.iteration));
            let _ = std::fs::remove_dir_all(&dest);
            if std::fs::rename(&staged, &dest).is_ok() {
                t.checkpoint = Some(dest);
            }
        }
        if let Some(w) = &mut t.writer
            && let Err(e) = w.result(&metrics)
            && t.fatal.is_none()
        {
            // A run whose results cannot be kept stops (its checkpoints stay).
            t.fatal = Some(format!("{}: cannot write results: {e}", t.dir.display()));
        }
        // The experiment's metric and the stop keys must be reported: a trial without them
        // cannot be compared, or would never stop (as Ray refuses such a result).
        if t.fatal.is_none() && t.last.is_none() {
            let mut needed: Vec<(&str, &str)> = Vec::new();
            if let Some(m) = &self.tune.metric {
                needed.push(("metric", m));
            }
            if let Stop::Criteria(c) = &self.run.stop {
                needed.extend(c.iter().map(|(k, _)| ("stop key", k.as_str())));
            }
            if let Some((what, k)) = needed.into_iter().find(|(_, k)| !metrics.contains_key(*k)) {
                let keys: Vec<&str> = metrics.keys().map(String::as_str).collect();
                t.fatal = Some(format!(
                    "the trial's result has no {what} {k:?} (it reported: {})",
                    keys.join(", ")
                ));
            }
        }
        if self.run.verbose >= 2 {
            out!(
                "Trial {} result {}: {}",
                t.id,
                t.iteration,
                Value::Object(metrics.clone())
            );
        }
        for c in &self.run.callbacks {
            c.on_trial_result(&t.info(), &metrics);
        }
        let stop_by_criteria = self.run.stop.met(&t.id, &metrics);
        let stop = if self.run.checkpoint_at_end {
            Decision::StopAndSave
        } else {
            Decision::Stop
        };
        let action = self.tune.scheduler.on_result(i, &metrics);
        t.last = Some(metrics);
        if t.fatal.is_some() {
            // Ends as a failure once the trainable returns.
            return (Decision::Stop, None);
        }
        if out_of_time || action == Action::Stop {
            t.stopped_early = true;
            return (stop, None);
        }
        if stop_by_criteria {
            return (stop, None);
        }
        match action {
            Action::Exploit(src) => (Decision::Continue, Some(src)),
            _ => (Decision::Continue, None),
        }
    }

    fn print_table(&self, grid: &ResultGrid) {
        let metric = self.tune.metric.clone();
        out!(
            "Experiment {} ({} trials) in {}",
            grid.experiment_path
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default(),
            grid.len(),
            grid.experiment_path.display()
        );
        for r in &grid.results {
            let params: Vec<String> = varied(&self.space, &r.config)
                .into_iter()
                .map(|(k, v)| format!("{k}={}", short(&v)))
                .collect();
            let m = metric
                .as_deref()
                .and_then(|m| r.metric(m).map(|v| format!("{m}={v:.6}")))
                .unwrap_or_default();
            out!(
                "  {:<12} {:<10} iter {:<5} {:<40} {m}",
                r.trial_id,
                r.status.to_string(),
                r.num_results,
                params.join(", ")
            );
        }
        if let (Some(m), Some(_)) = (&metric, self.tune.mode)
            && let Ok(best) = grid.get_best_result(None, None)
        {
            out!(
                "Best trial {} ({m}={}): {} in {}",
                best.trial_id,
                best.metric(m).unwrap_or(f64::NAN),
                best.config,
                best.path.display()
            );
        }
    }
}

impl std::fmt::Debug for Trial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trial").field("id", &self.id).finish()
    }
}

/// Sends `Finished(Err)` for a trial whose task is dropped without running to its end.
struct FinishGuard {
    events: crossbeam_channel::Sender<(usize, Event)>,
    index: usize,
    sent: bool,
}

impl Drop for FinishGuard {
    fn drop(&mut self) {
        if !self.sent {
            let _ = self.events.send((
                self.index,
                Event::Finished(Err("the runtime dropped the trial's task".into())),
            ));
        }
    }
}

/// The iteration of a `checkpoint_NNNNNN` folder (0 for none).
fn checkpoint_iteration(ck: Option<&Path>) -> u64 {
    ck.and_then(|p| p.file_name())
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix("checkpoint_"))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn append(path: &Path, line: &str) {
    use std::io::Write;
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = f.write_all(line.as_bytes());
    }
}

/// A tag unique per experiment (its trials' ids begin with it).
fn new_tag() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    format!("{:05x}", h.finish() & 0xfffff)
}

/// The short form of Ray's `tune.run(trainable, config=...)`: every trial to its end, then
/// the analysis (whose `get_best_config` the tutorial calls).
pub fn run(
    name: &str,
    trainable: TrialFn,
    config: impl Into<Space>,
) -> Result<ResultGrid, TuneError> {
    Tuner::new(name, trainable, config).fit()
}

fn check_name(name: &str) -> Result<(), TuneError> {
    let ok = !name.is_empty()
        && name != "."
        && name != ".."
        && !name.contains(['/', '\\', '\0'])
        && Path::new(name).components().count() == 1;
    if ok {
        Ok(())
    } else {
        Err(TuneError::Config(format!(
            "experiment name {name:?}: expected one folder name (no '/', '..')"
        )))
    }
}

fn short(v: &Value) -> String {
    match v {
        Value::Number(n) => match n.as_f64() {
            Some(x) if n.is_f64() => format!("{x:.4}"),
            _ => n.to_string(),
        },
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn sanitize(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "=,._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    out.truncate(100);
    out
}

fn unix_time() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `2026-11-28_19-40-00`, as Tune names experiments and trials (UTC).
pub fn timestamp() -> String {
    let s = unix_time();
    let (days, rest) = (s / 86_400, s % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}_{:02}-{:02}-{:02}",
        rest / 3600,
        rest / 60 % 60,
        rest % 60
    )
}
