//! An experiment whose config searches (`lr: {grid_search: [...]}`, `--num-samples`) runs
//! through Tune, as RLlib's `rllib train` ran `tune.run`: one trial per variant, each an RLlib
//! run in its Tune trial folder (its own `params.yaml`, `progress.csv`, `result.json`,
//! TensorBoard events and checkpoints), scheduled by Tune's FIFO or ASHA, with the best trial
//! reported at the end.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::algorithm::Algorithm;
use crate::config::Experiment;
use crate::config::export::{config_json, to_yaml};
use crate::signals::StopRequest;
use crate::trainable::{RunLogger, TrialConfigs};

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
    /// Resume the experiment's interrupted run (`--resume`).
    pub resume: bool,
}

/// The metric RLlib's searches compare, as its tuned examples do.
pub const METRIC: &str = "env_runners/episode_return_mean";

/// The scheduler a search asked for, PBT with its mutated keys.
enum Sched {
    Fifo,
    Asha(tune::Asha),
    Pbt(tune::Pbt, Vec<(String, tune::Mutation)>),
}

/// `--scheduler-config`'s settings: each known, each of its type.
struct Settings<'a> {
    name: &'a str,
    cfg: &'a Map<String, Value>,
    /// Where the settings come from, for errors (`--scheduler-config`, `file.yaml:7: scheduler`).
    from: &'a str,
}

impl Settings<'_> {
    fn check_known(&self, known: &[&str]) -> Result<(), String> {
        match self.cfg.keys().find(|k| !known.contains(&k.as_str())) {
            Some(k) => Err(format!(
                "{}: unknown {} setting {k:?} (known: {})",
                self.from,
                self.name,
                known.join(", ")
            )),
            None => Ok(()),
        }
    }

    fn num(&self, k: &str) -> Result<Option<f64>, String> {
        match self.cfg.get(k) {
            None => Ok(None),
            Some(v) => v
                .as_f64()
                .map(Some)
                .ok_or_else(|| format!("{}: {k}: expected a number, got {v}", self.from)),
        }
    }

    fn text(&self, k: &str) -> Result<Option<&str>, String> {
        match self.cfg.get(k) {
            None => Ok(None),
            Some(v) => v
                .as_str()
                .map(Some)
                .ok_or_else(|| format!("{}: {k}: expected a string, got {v}", self.from)),
        }
    }

    fn mode(&self) -> Result<Option<tune::Mode>, String> {
        self.text("mode")?
            .map(|m| {
                m.parse()
                    .map_err(|e: tune::TuneError| format!("--scheduler-config: {e}"))
            })
            .transpose()
    }
}

/// A scheduler with the `time_attr`, `metric` and `mode` its settings give (ASHA's and
/// PBT's builders share these names, not a trait).
macro_rules! search_properties {
    ($s:expr, $x:expr) => {{
        let mut x = $x;
        if let Some(v) = $s.text("time_attr")? {
            x = x.time_attr(v);
        }
        if let Some(v) = $s.text("metric")? {
            x = x.metric(v);
        }
        if let Some(m) = $s.mode()? {
            x = x.mode(m);
        }
        x
    }};
}

/// The scheduler a search runs with: `--scheduler` with `--scheduler-config`, else the
/// experiment's `scheduler:` (its settings replaced by `--scheduler-config` when given), else
/// FIFO.
fn scheduler(exp: &Experiment, a: &SearchArgs) -> Result<Sched, String> {
    let flag_cfg: Option<Map<String, Value>> = match &a.scheduler_config {
        None => None,
        Some(text) => match serde_json::from_str(text) {
            Ok(Value::Object(m)) => Some(m),
            _ => {
                return Err(format!(
                    "--scheduler-config {text:?}: expected a JSON mapping such as '{{\"max_t\": 100, \"grace_period\": 10}}'"
                ));
            }
        },
    };
    let file_from = exp
        .scheduler
        .as_ref()
        .map(|s| format!("{}: scheduler", s.origin));
    let (kind, cfg, from) = match (&a.scheduler, &exp.scheduler, flag_cfg) {
        (Some(k), _, c) => (
            k.clone(),
            c.unwrap_or_default(),
            "--scheduler-config".to_string(),
        ),
        (None, Some(spec), None) => (
            spec.kind.clone(),
            spec.settings.clone(),
            file_from.unwrap_or_default(),
        ),
        (None, Some(spec), Some(c)) => (spec.kind.clone(), c, "--scheduler-config".to_string()),
        (None, None, c) => (
            "fifo".to_string(),
            c.unwrap_or_default(),
            "--scheduler-config".to_string(),
        ),
    };
    let kind = kind.as_str();
    let cfg = &cfg;
    let from = from.as_str();
    let s = Settings {
        name: match kind {
            "asha" => "ASHA",
            "pbt" => "PBT",
            _ => "FIFO",
        },
        cfg,
        from,
    };
    match kind {
        "fifo" => {
            s.check_known(&[])?;
            Ok(Sched::Fifo)
        }
        "asha" => {
            s.check_known(&[
                "time_attr",
                "metric",
                "mode",
                "max_t",
                "grace_period",
                "reduction_factor",
                "brackets",
            ])?;
            let mut x = search_properties!(s, tune::Asha::new());
            if let Some(v) = s.num("max_t")? {
                x = x.max_t(v);
            }
            if let Some(v) = s.num("grace_period")? {
                x = x.grace_period(v);
            }
            if let Some(v) = s.num("reduction_factor")? {
                x = x.reduction_factor(v);
            }
            if let Some(v) = s.num("brackets")? {
                if !(v >= 1.0 && v.fract() == 0.0) {
                    return Err(format!("{from}: brackets {v}: expected an integer >= 1"));
                }
                x = x.brackets(v as usize);
            }
            Ok(Sched::Asha(x))
        }
        "pbt" => {
            s.check_known(&[
                "time_attr",
                "metric",
                "mode",
                "perturbation_interval",
                "hyperparam_mutations",
                "quantile_fraction",
                "resample_probability",
                "seed",
            ])?;
            let mut x = search_properties!(s, tune::Pbt::new());
            if let Some(v) = s.num("perturbation_interval")? {
                x = x.perturbation_interval(v);
            }
            if let Some(v) = s.num("quantile_fraction")? {
                x = x.quantile_fraction(v);
            }
            if let Some(v) = s.num("resample_probability")? {
                x = x.resample_probability(v);
            }
            if let Some(v) = s.num("seed")? {
                x = x.seed(v as u64);
            }
            let Some(Value::Object(m)) = cfg.get("hyperparam_mutations") else {
                return Err(format!(
                    "{from}: PBT needs hyperparam_mutations, a mapping of config keys to a list of values or a domain such as {{\"uniform\": [0.1, 0.3]}}"
                ));
            };
            let mut keys = Vec::new();
            for (k, v) in m {
                let mutation = match v {
                    Value::Array(list) if !list.is_empty() => tune::Mutation::List(list.clone()),
                    other => tune::Mutation::Domain(
                        tune::Domain::from_json(other)
                            .map_err(|e| format!("{from}: hyperparam_mutations.{k}: {e}"))?,
                    ),
                };
                x = x.mutate(k, mutation.clone());
                keys.push((k.clone(), mutation));
            }
            Ok(Sched::Pbt(x, keys))
        }
        other if a.scheduler.is_some() => {
            Err(format!("--scheduler {other:?}: expected fifo, asha or pbt"))
        }
        other => Err(format!(
            "{from}: type {other:?}: expected fifo, asha or pbt"
        )),
    }
}

/// A single run's algorithm, built (and restored) before anything was written, and its
/// folder: Tune's one trial starts from it.
#[derive(Debug)]
pub struct Prepared {
    /// The algorithm.
    pub algo: Algorithm,
    /// The run folder, already made (`<output>/<experiment>/<algo>_<env>_<time>`).
    pub dir: PathBuf,
}

/// The grid indices of a trial's Tune config (the values as shown, per grid key).
fn picks(grid: &[crate::config::GridKey], config: &Value) -> Vec<usize> {
    grid.iter()
        .map(|g| {
            let chosen = g
                .setting
                .split('.')
                .try_fold(config, |c, k| c.get(k))
                .and_then(Value::as_str)
                .unwrap_or_default();
            g.shown.iter().position(|s| s == chosen).unwrap_or(0)
        })
        .collect()
}

/// Runs `exp` through Tune under `output_dir/<experiment>/`: one trial per variant of its
/// grid (× `--num-samples`), or the one trial of `single`. Each trial is an [`Algorithm`]
/// stepped by Tune's trial runner, which applies the stop criteria and the checkpoint cadence,
/// writes the result files (through [`RunLogger`]) and, on a stop signal in `signal`, ends
/// the running trials after their iteration with a checkpoint and starts no more.
pub fn run(
    exp: Experiment,
    output_dir: &Path,
    args: &SearchArgs,
    signal: &StopRequest,
    single: Option<Prepared>,
    callbacks: Vec<Arc<dyn tune::Callback>>,
) -> Result<tune::ResultGrid, String> {
    // A search on a cluster runs each trial's algorithm in an actor on a node (its env
    // runners beside it); a single run keeps its algorithm here and spreads its runners.
    let on_cluster = exp.address.clone().filter(|_| single.is_none());
    let mut space = tune::Space::new();
    for g in &exp.grid {
        space = space.set(
            &g.setting,
            tune::grid_search(g.shown.iter().map(|s| Value::from(s.as_str()))),
        );
    }
    let scheduler = scheduler(&exp, args)?;
    // PBT's mutated keys are in the trials' configs, first drawn from their mutations (as
    // Ray fills keys a config lacks).
    let mutated: Vec<String> = match &scheduler {
        Sched::Pbt(_, keys) => keys.iter().map(|(k, _)| k.clone()).collect(),
        _ => Vec::new(),
    };
    let mut pbt_interval = None;
    if let Sched::Pbt(p, keys) = &scheduler {
        // Checkpoints every perturbation interval when it counts iterations, else every
        // iteration, so that a top trial always has one to clone.
        pbt_interval = Some(if p.time_key() == "training_iteration" {
            p.interval().max(1.0).round() as usize
        } else {
            1
        });
        for (k, m) in keys {
            check_mutation(&exp, k, m)?;
            space = space.set(
                k,
                match m {
                    tune::Mutation::List(v) => tune::choice(v.clone()),
                    tune::Mutation::Domain(d) => tune::Space::Domain(d.clone()),
                },
            );
        }
    }
    // A search's trials draw their seeds once, kept in their configs (and so in the
    // experiment's state): a retried, exploited or resumed trial goes on with its own.
    if single.is_none() && exp.config.seed.is_none() {
        space = space.set(
            "seed",
            tune::sample_from(|_, _| Value::from(envs::NpRandom::from_entropy().next_u64() >> 1)),
        );
    }
    // Each trial holds the CPUs its env runners ask for, at most the machine's (see
    // `trial_cpus`). A single run holds none: it has the machine to itself (and its runners
    // may be on a cluster).
    let need = if single.is_some() {
        0.0
    } else {
        trial_cpus(&exp)
    };
    let trial_dir = single.as_ref().map(|p| p.dir.clone());
    let is_single = trial_dir.is_some();
    let first = parking_lot::Mutex::new(single.map(|p| p.algo));
    let configs = TrialConfigs::default();
    let base = Arc::new(exp.clone());
    let sig = signal.clone();
    let seen = configs.clone();
    // The trial's experiment: its grid values and PBT's mutated keys applied.
    let variant = move |config: &Value| -> Result<Experiment, String> {
        let mut e = base
            .variant(&picks(&base.grid, config))
            .map_err(|e| e.to_string())?;
        if !mutated.is_empty() {
            let mut m = Value::Object(Default::default());
            for k in &mutated {
                if let Some(v) = k.split('.').try_fold(config, |c, p| c.get(p)) {
                    set_dotted(&mut m, k, v.clone());
                }
            }
            e.apply_config_text(&m.to_string())
                .map_err(|e| e.to_string())?;
        }
        if let Some(seed) = config.get("seed").and_then(Value::as_u64) {
            e.config.seed = Some(seed);
        }
        Ok(e)
    };
    let seed_of = |e: &Experiment| {
        e.config
            .seed
            .unwrap_or_else(|| envs::NpRandom::from_entropy().next_u64() >> 1)
    };
    // Writes the trial's params.yaml and records its config for the result files.
    let record = move |dir: &Path, full: Value| -> Result<(), String> {
        let params = dir.join("params.yaml");
        std::fs::write(&params, to_yaml(&full))
            .map_err(|e| format!("{}: {e}", params.display()))?;
        seen.set(dir, full);
        Ok(())
    };
    let name = exp.name.clone();
    let trainable = if on_cluster.is_some() {
        tune::remote_class(
            crate::trainable::TRAINABLE,
            move |config: &Value, session: &tune::Session| {
                if sig.signal().is_some() {
                    return Err("interrupted before it started".into());
                }
                let e = variant(config)?;
                let seed = seed_of(&e);
                record(session.trial_dir(), config_json(&e.config, seed))?;
                serde_json::to_value(crate::trainable::RemoteTrial {
                    config: e.config,
                    seed,
                    experiment: name.clone(),
                })
                .map_err(|e| e.to_string())
            },
        )
    } else {
        tune::class(
            move |config: &Value, session: &tune::Session| -> Result<Algorithm, String> {
                // After Ctrl-C, trials not yet started do not start.
                if sig.signal().is_some() {
                    return Err("interrupted before it started".into());
                }
                let mut algo = match first.lock().take() {
                    Some(a) => a,
                    None => {
                        let e = variant(config)?;
                        Algorithm::new_on(e.config.clone(), seed_of(&e), e.address.as_deref())
                            .map_err(|e| e.to_string())?
                    }
                };
                algo.set_experiment(&name);
                record(session.trial_dir(), config_json(algo.config(), algo.seed()))?;
                Ok(algo)
            },
        )
    };
    let logged = configs.clone();
    let logger: tune::LoggerFactory = Arc::new(move |t: &tune::TrialInfo<'_>| {
        Ok(Box::new(RunLogger::open(t.dir, logged.clone())?) as Box<dyn tune::TrialLogger>)
    });
    let mut tc = tune::TuneConfig {
        metric: Some(METRIC.into()),
        mode: Some(tune::Mode::Max),
        num_samples: args.num_samples.max(1),
        max_concurrent_trials: args.max_concurrent_trials,
        seed: exp.config.seed.unwrap_or(0),
        ..tune::TuneConfig::default()
    };
    tc.scheduler = match scheduler {
        Sched::Fifo => Box::new(tune::Fifo),
        Sched::Asha(a) => Box::new(a),
        Sched::Pbt(p, _) => Box::new(p),
    };
    let sig = signal.clone();
    let rc = tune::RunConfig {
        name: Some(exp.name.clone()),
        storage_path: output_dir.to_path_buf(),
        stop: tune::Stop::Criteria(
            exp.stop
                .iter()
                .map(|c| (c.metric().to_string(), c.threshold()))
                .collect(),
        ),
        verbose: if is_single { 0 } else { 1 },
        checkpoint_frequency: match (exp.checkpoint_frequency, pbt_interval) {
            // PBT clones checkpoints: one at every perturbation unless the run says otherwise.
            (0, Some(every)) => every,
            (n, _) => n as usize,
        },
        checkpoint_at_end: exp.checkpoint_at_end,
        interrupt: Some(tune::Interrupt::new(move || sig.signal().is_some())),
        logger: Some(logger),
        trial_dirname: trial_dir.map(|d| {
            let name = d
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default();
            Arc::new(move |_: &str, _: &Value| name.clone()) as tune::DirNameFn
        }),
        callbacks,
        // A single run resumes from a checkpoint (`--restore`), not from Tune's state.
        write_experiment_state: !is_single,
        ..tune::RunConfig::default()
    };
    let rt = match &on_cluster {
        Some(a) => Some(
            ray::init(
                ray::InitOptions::new()
                    .num_cpus(ray::detect_cpus() as f64)
                    .address(a.clone()),
            )
            .map_err(|e| format!("--address {a}: {e}"))?,
        ),
        None => None,
    };
    let tuner = if args.resume {
        let at = output_dir.join(&exp.name);
        if !at.join(tune::STATE_FILE).is_file() {
            return Err(format!(
                "--resume: no experiment to resume at {} (no {})",
                at.display(),
                tune::STATE_FILE
            ));
        }
        tune::Tuner::restore(&at, trainable)
            .map_err(|e| e.to_string())?
            .param_space(space)
    } else {
        tune::Tuner::new(&exp.run, trainable, space)
    };
    let tuner = match rt {
        Some(rt) => tuner.runtime(rt).remote_trials(true),
        None => tuner,
    };
    tuner
        .with_resources([(ray::CPU, need)])
        .tune_config(tc)
        .run_config(rc)
        .fit()
        .map_err(|e| e.to_string())
}

/// The CPUs one trial of a search holds: its env runners', at most the machine's; the most
/// any variant of the grid asks for. The learner holds none of its own (it borrows the
/// runners' while they wait, as in Ray's `build_algo`).
fn trial_cpus(exp: &Experiment) -> f64 {
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
    need.min(cpus)
}

fn set_dotted(v: &mut Value, key: &str, x: Value) {
    match key.split_once('.') {
        None => {
            if let Value::Object(m) = v {
                m.insert(key.to_string(), x);
            }
        }
        Some((head, rest)) => {
            if let Value::Object(m) = v {
                let child = m
                    .entry(head.to_string())
                    .or_insert_with(|| Value::Object(Default::default()));
                set_dotted(child, rest, x);
            }
        }
    }
}

/// Every value a PBT mutation of `key` can give must be one the key takes.
fn check_mutation(exp: &Experiment, key: &str, m: &tune::Mutation) -> Result<(), String> {
    let values: Vec<Value> = match m {
        tune::Mutation::List(v) => v.clone(),
        tune::Mutation::Domain(d) => {
            // The bounds of the domain (and a value perturbed beyond them stays a number of
            // the same kind).
            let mut rng = tune::Rng::new(0);
            (0..8).map(|_| d.sample(&mut rng)).collect()
        }
    };
    for v in values {
        let mut probe = exp.clone();
        let mut m = Value::Object(Default::default());
        set_dotted(&mut m, key, v.clone());
        probe
            .apply_config_text(&m.to_string())
            .map_err(|e| format!("PBT: hyperparam_mutations.{key}: value {v}: {e}"))?;
    }
    Ok(())
}
