//! RLlib's config language: tuned-example YAML files (`<experiment>: {env, run, stop, config}`),
//! `--config` / `--stop` mappings and flags, with RLlib's key names and their old aliases.
//!
//! Every error names where it comes from (file, line, column), the key, what was expected,
//! and for an unknown key the nearest known one.

pub mod export;
mod values;
pub mod yaml;

use std::fmt;
use std::path::Path;

use algorithms::{Activation, AlgorithmConfig, Device, LearnerBackendKind, ObservationFilter};

pub use self::values::nearest;
use self::values::{as_bool, as_f64_in, as_u64, as_usize, err, expected, scalar_str, unknown_key};
use self::yaml::{Kind, Node};

/// A config error, with its position.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigError {
    /// The file, or the flag the text came from (`--config`, `--stop`).
    pub origin: String,
    /// Line and column (from 1), when known.
    pub position: Option<(usize, usize)>,
    /// The key, as written (`config.num_sgd_iter`).
    pub key: Option<String>,
    /// What is wrong and what was expected.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.origin)?;
        if let Some((line, col)) = self.position {
            write!(f, ":{line}:{col}")?;
        }
        f.write_str(": ")?;
        if let Some(k) = &self.key {
            write!(f, "{k}: ")?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConfigError {}

/// One stop criterion; the first one met stops the run.
#[derive(Debug, Clone, PartialEq)]
pub enum StopCriterion {
    /// Mean return of the last 100 training episodes reaches this.
    EpisodeReturnMean(f64),
    /// Mean return of the last evaluation reaches this.
    EvaluationReturnMean(f64),
    /// Env steps sampled reach this.
    EnvSteps(u64),
    /// Iterations reach this.
    TrainingIteration(u64),
    /// Wall time of training reaches this many seconds.
    TimeTotalS(f64),
}

impl StopCriterion {
    /// The metric's name in RLlib's current naming.
    pub fn metric(&self) -> &'static str {
        match self {
            StopCriterion::EpisodeReturnMean(_) => "env_runners/episode_return_mean",
            StopCriterion::EvaluationReturnMean(_) => "evaluation/env_runners/episode_return_mean",
            StopCriterion::EnvSteps(_) => "num_env_steps_sampled_lifetime",
            StopCriterion::TrainingIteration(_) => "training_iteration",
            StopCriterion::TimeTotalS(_) => "time_total_s",
        }
    }

    /// The threshold.
    pub fn threshold(&self) -> f64 {
        match *self {
            StopCriterion::EpisodeReturnMean(v)
            | StopCriterion::EvaluationReturnMean(v)
            | StopCriterion::TimeTotalS(v) => v,
            StopCriterion::EnvSteps(v) | StopCriterion::TrainingIteration(v) => v as f64,
        }
    }
}

/// The stop keys RLlib and Tune accept, old and new, and what they mean.
type MakeCriterion = fn(f64) -> StopCriterion;

const STOP_KEYS: &[(&str, MakeCriterion)] = &[
    ("episode_reward_mean", StopCriterion::EpisodeReturnMean),
    (
        "sampler_results/episode_reward_mean",
        StopCriterion::EpisodeReturnMean,
    ),
    (
        "env_runners/episode_return_mean",
        StopCriterion::EpisodeReturnMean,
    ),
    ("episode_return_mean", StopCriterion::EpisodeReturnMean),
    (
        "evaluation/env_runners/episode_return_mean",
        StopCriterion::EvaluationReturnMean,
    ),
    (
        "evaluation/episode_reward_mean",
        StopCriterion::EvaluationReturnMean,
    ),
    ("timesteps_total", |v| StopCriterion::EnvSteps(v as u64)),
    ("num_env_steps_sampled_lifetime", |v| {
        StopCriterion::EnvSteps(v as u64)
    }),
    ("training_iteration", |v| {
        StopCriterion::TrainingIteration(v as u64)
    }),
    ("time_total_s", StopCriterion::TimeTotalS),
];

/// A whole run: what `rllib train` executes.
#[derive(Debug, Clone, PartialEq)]
pub struct Experiment {
    /// The experiment's name (the YAML's top-level key, or `PPO_<env>` from flags).
    pub name: String,
    /// The algorithm (`PPO`).
    pub run: String,
    /// Stop criteria.
    pub stop: Vec<StopCriterion>,
    /// Every setting.
    pub config: AlgorithmConfig,
    /// Checkpoint every this many iterations (0: only at the end if asked).
    pub checkpoint_frequency: u64,
    /// Whether to checkpoint at the end.
    pub checkpoint_at_end: bool,
    /// Lines to print once: keys accepted but meaningless here.
    pub warnings: Vec<String>,
}

/// The algorithms this build runs.
pub const ALGORITHMS: &[&str] = &["PPO"];

impl Experiment {
    /// RLlib's defaults for `--algo` and `--env`.
    pub fn from_flags(algo: &str, env: &str) -> Result<Self, ConfigError> {
        let mut e = Experiment {
            name: format!("{algo}_{env}"),
            run: String::new(),
            stop: Vec::new(),
            config: AlgorithmConfig {
                env: env.to_string(),
                ..Default::default()
            },
            checkpoint_frequency: 0,
            checkpoint_at_end: true,
            warnings: Vec::new(),
        };
        e.set_algorithm(algo, "--algo", None)?;
        Ok(e)
    }

    fn set_algorithm(
        &mut self,
        algo: &str,
        origin: &str,
        at: Option<&Node>,
    ) -> Result<(), ConfigError> {
        if !ALGORITHMS.contains(&algo) {
            return Err(err(
                origin,
                at,
                Some("run"),
                format!(
                    "unknown algorithm '{algo}'; available: {}{}",
                    ALGORITHMS.join(", "),
                    nearest(algo, ALGORITHMS.iter().copied())
                        .map(|n| format!(" (did you mean '{n}'?)"))
                        .unwrap_or_default()
                ),
            ));
        }
        self.run = algo.to_string();
        Ok(())
    }

    /// Reads a tuned-example file.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let origin = path.display().to_string();
        let text = match std::fs::read(path) {
            Ok(bytes) => String::from_utf8(bytes).map_err(|_| ConfigError {
                origin: origin.clone(),
                position: None,
                key: None,
                message: "is not UTF-8 text".to_string(),
            })?,
            Err(e) => {
                let what = if path.is_dir() {
                    "is a folder, expected a YAML file".to_string()
                } else {
                    format!("cannot be read: {e}")
                };
                return Err(ConfigError {
                    origin,
                    position: None,
                    key: None,
                    message: what,
                });
            }
        };
        Self::from_yaml(&text, &origin)
    }

    /// Reads a tuned example from text; `origin` names it in errors.
    pub fn from_yaml(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let root = parse_mapping(text, origin)?.ok_or_else(|| ConfigError {
            origin: origin.to_string(),
            position: None,
            key: None,
            message:
                "is empty; expected `<experiment>: {env: ..., run: ..., stop: ..., config: ...}`"
                    .to_string(),
        })?;
        let Kind::Map(top) = &root.kind else {
            unreachable!("parse_mapping checks")
        };
        let (name_node, body) = match top.as_slice() {
            [one] => one,
            [] => {
                return Err(err(
                    origin,
                    Some(&root),
                    None,
                    "no experiment in the file".into(),
                ));
            }
            [_, second, ..] => {
                return Err(err(
                    origin,
                    Some(&second.0),
                    None,
                    "more than one experiment in the file; put each in its own file".into(),
                ));
            }
        };
        let name = scalar_str(origin, name_node, "experiment name")?.to_string();
        let Kind::Map(fields) = &body.kind else {
            return Err(err(
                origin,
                Some(body),
                Some(&name),
                format!(
                    "expected a mapping with env, run, stop and config, found {}",
                    body.describe()
                ),
            ));
        };
        let mut e = Experiment {
            name: name.clone(),
            run: String::new(),
            stop: Vec::new(),
            config: AlgorithmConfig::default(),
            checkpoint_frequency: 0,
            checkpoint_at_end: true,
            warnings: Vec::new(),
        };
        let mut env_set = false;
        let mut run_node = None;
        for (k, v) in fields {
            let key = scalar_str(origin, k, "key")?;
            match key {
                "env" => {
                    e.config.env = scalar_str(origin, v, "env")?.to_string();
                    env_set = true;
                }
                "run" => run_node = Some(v),
                "stop" => e.stop = parse_stop(v, origin, &format!("{name}.stop"))?,
                "config" => e.apply_config(v, origin, &format!("{name}.config"))?,
                "checkpoint_config" => e.apply_checkpoint_config(v, origin, &name)?,
                "checkpoint_freq" => e.checkpoint_frequency = as_u64(origin, v, key)?,
                "checkpoint_at_end" => e.checkpoint_at_end = as_bool(origin, v, key)?,
                _ => {
                    let known = ["env", "run", "stop", "config", "checkpoint_config"];
                    return Err(unknown_key(
                        origin,
                        k,
                        &format!("{name}.{key}"),
                        known.iter().copied(),
                    ));
                }
            }
        }
        let Some(run) = run_node else {
            return Err(err(
                origin,
                Some(body),
                Some(&name),
                "missing `run: <algorithm>` (e.g. `run: PPO`)".into(),
            ));
        };
        let algo = scalar_str(origin, run, "run")?.to_string();
        e.set_algorithm(&algo, origin, Some(run))?;
        if !env_set && e.config.env.is_empty() {
            return Err(err(
                origin,
                Some(body),
                Some(&name),
                "missing `env: <env id>`".into(),
            ));
        }
        Ok(e)
    }

    fn apply_checkpoint_config(
        &mut self,
        v: &Node,
        origin: &str,
        name: &str,
    ) -> Result<(), ConfigError> {
        let Kind::Map(entries) = &v.kind else {
            return Err(expected(origin, v, "checkpoint_config", "a mapping"));
        };
        for (k, v) in entries {
            match scalar_str(origin, k, "key")? {
                "checkpoint_frequency" => {
                    self.checkpoint_frequency = as_u64(origin, v, "checkpoint_frequency")?
                }
                "checkpoint_at_end" => {
                    self.checkpoint_at_end = as_bool(origin, v, "checkpoint_at_end")?
                }
                other => {
                    return Err(unknown_key(
                        origin,
                        k,
                        &format!("{name}.checkpoint_config.{other}"),
                        ["checkpoint_frequency", "checkpoint_at_end"].into_iter(),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Applies a `config` mapping (from the file or `--config`) on top of the current one.
    pub fn apply_config(
        &mut self,
        node: &Node,
        origin: &str,
        prefix: &str,
    ) -> Result<(), ConfigError> {
        let Kind::Map(entries) = &node.kind else {
            return Err(expected(origin, node, prefix, "a mapping of config keys"));
        };
        for (k, v) in entries {
            let key = scalar_str(origin, k, "key")?;
            let path = format!("{prefix}.{key}");
            self.apply_key(key, k, v, origin, &path)?;
        }
        self.validate(origin, node)
    }

    /// Applies a `--config` flag's text (a JSON or YAML mapping).
    pub fn apply_config_text(&mut self, text: &str) -> Result<(), ConfigError> {
        let Some(node) = parse_mapping(text, "--config")? else {
            return Ok(());
        };
        self.apply_config(&node, "--config", "config")
    }

    /// Replaces the stop criteria with a `--stop` flag's text.
    pub fn set_stop_text(&mut self, text: &str) -> Result<(), ConfigError> {
        self.stop = match parse_mapping(text, "--stop")? {
            None => Vec::new(),
            Some(node) => parse_stop(&node, "--stop", "stop")?,
        };
        Ok(())
    }

    fn apply_key(
        &mut self,
        key: &str,
        k: &Node,
        v: &Node,
        origin: &str,
        path: &str,
    ) -> Result<(), ConfigError> {
        let c = &mut self.config;
        match key {
            "env" => c.env = scalar_str(origin, v, path)?.to_string(),
            "num_env_runners" | "num_workers" | "num_rollout_workers" => {
                c.num_env_runners = as_usize(origin, v, path, 0)?;
            }
            "num_envs_per_env_runner" | "num_envs_per_worker" => {
                c.num_envs_per_env_runner = as_usize(origin, v, path, 1)?;
            }
            "rollout_fragment_length" => {
                c.rollout_fragment_length = if v.scalar() == Some("auto") {
                    None
                } else {
                    Some(as_usize(origin, v, path, 1).map_err(|mut e| {
                        e.message = format!("{} or \"auto\"", e.message);
                        e
                    })?)
                };
            }
            "train_batch_size" | "train_batch_size_per_learner" => {
                c.train_batch_size = as_usize(origin, v, path, 1)?;
            }
            "minibatch_size" | "sgd_minibatch_size" => {
                c.minibatch_size = as_usize(origin, v, path, 1)?
            }
            "num_epochs" | "num_sgd_iter" => c.num_epochs = as_usize(origin, v, path, 1)?,
            "lr" => c.lr = as_f64_in(origin, v, path, 0.0, f64::INFINITY, false)?,
            "lr_schedule" => c.lr_schedule = parse_schedule(origin, v, path)?,
            "gamma" => c.gamma = as_f64_in(origin, v, path, 0.0, 1.0, true)?,
            "lambda" | "lambda_" => c.lambda = as_f64_in(origin, v, path, 0.0, 1.0, true)?,
            "clip_param" => c.clip_param = as_f64_in(origin, v, path, 0.0, f64::INFINITY, false)?,
            "vf_clip_param" => {
                c.vf_clip_param = as_f64_in(origin, v, path, 0.0, f64::INFINITY, false)?
            }
            "vf_loss_coeff" => {
                c.vf_loss_coeff = as_f64_in(origin, v, path, 0.0, f64::INFINITY, true)?
            }
            "entropy_coeff" => {
                c.entropy_coeff = as_f64_in(origin, v, path, 0.0, f64::INFINITY, true)?
            }
            "kl_coeff" => c.kl_coeff = as_f64_in(origin, v, path, 0.0, f64::INFINITY, true)?,
            "kl_target" => c.kl_target = as_f64_in(origin, v, path, 0.0, f64::INFINITY, false)?,
            "use_kl_loss" => c.use_kl_loss = as_bool(origin, v, path)?,
            "grad_clip" => {
                c.grad_clip = if v.is_null() {
                    None
                } else {
                    Some(as_f64_in(origin, v, path, 0.0, f64::INFINITY, false)?)
                };
            }
            "observation_filter" => {
                c.observation_filter = match scalar_str(origin, v, path)? {
                    "MeanStdFilter" => ObservationFilter::MeanStdFilter,
                    "NoFilter" => ObservationFilter::NoFilter,
                    other => {
                        return Err(err(
                            origin,
                            Some(v),
                            Some(path),
                            format!("unknown filter '{other}'; expected MeanStdFilter or NoFilter"),
                        ));
                    }
                };
            }
            "model" => self.apply_model(v, origin, path)?,
            "seed" => {
                c.seed = if v.is_null() {
                    None
                } else {
                    Some(as_u64(origin, v, path)?)
                };
            }
            "num_gpus" | "num_gpus_per_learner" => {
                let g = as_f64_in(origin, v, path, 0.0, 1.0, true).map_err(|mut e| {
                    e.message = format!("{} (one learner uses at most one GPU)", e.message);
                    e
                })?;
                c.device = if g > 0.0 { Device::Cuda } else { Device::Cpu };
            }
            "evaluation_interval" => {
                c.evaluation_interval = if v.is_null() {
                    None
                } else {
                    match as_usize(origin, v, path, 0)? {
                        0 => None,
                        n => Some(n),
                    }
                };
            }
            "evaluation_duration" => c.evaluation_duration = as_usize(origin, v, path, 1)?,
            "num_cpus_per_learner" => {
                c.num_cpus_per_learner = if v.scalar() == Some("auto") {
                    None
                } else {
                    Some(as_usize(origin, v, path, 1)?)
                };
            }
            "learner_backend" => {
                c.learner_backend = match scalar_str(origin, v, path)? {
                    "auto" => LearnerBackendKind::Auto,
                    "fused" => LearnerBackendKind::Fused,
                    "candle" => LearnerBackendKind::Candle,
                    other => {
                        return Err(err(
                            origin,
                            Some(v),
                            Some(path),
                            format!(
                                "unknown learner backend '{other}'; expected auto, fused or candle"
                            ),
                        ));
                    }
                };
            }
            "restart_failed_env_runners"
            | "recreate_failed_env_runners"
            | "recreate_failed_workers" => {
                c.restart_failed_env_runners = as_bool(origin, v, path)?;
            }
            "max_num_env_runner_restarts" | "max_num_worker_restarts" => {
                c.max_num_env_runner_restarts = as_usize(origin, v, path, 0)?;
            }
            "framework" => {
                let fw = scalar_str(origin, v, path)?;
                self.warnings.push(format!(
                    "{origin}:{}: framework: {fw} is ignored: the learner is this project's own (Rust), on {}",
                    v.line, self.config.device
                ));
            }
            // Accepted for compatibility with RLlib's examples; they change nothing here.
            "enable_connectors"
            | "enable_rl_module_and_learner"
            | "enable_env_runner_and_connector_v2"
            | "log_level" => {}
            _ => return Err(unknown_key(origin, k, path, CONFIG_KEYS.iter().copied())),
        }
        Ok(())
    }

    fn apply_model(&mut self, v: &Node, origin: &str, prefix: &str) -> Result<(), ConfigError> {
        let Kind::Map(entries) = &v.kind else {
            return Err(expected(
                origin,
                v,
                prefix,
                "a mapping (fcnet_hiddens, fcnet_activation, vf_share_layers)",
            ));
        };
        for (k, v) in entries {
            let key = scalar_str(origin, k, "key")?;
            let path = format!("{prefix}.{key}");
            let m = &mut self.config.model;
            match key {
                "fcnet_hiddens" => {
                    let Kind::Seq(items) = &v.kind else {
                        return Err(expected(
                            origin,
                            v,
                            &path,
                            "a list of layer sizes, e.g. [64, 64]",
                        ));
                    };
                    m.fcnet_hiddens = items
                        .iter()
                        .map(|n| as_usize(origin, n, &path, 1))
                        .collect::<Result<_, _>>()?;
                }
                "fcnet_activation" => {
                    let s = scalar_str(origin, v, &path)?;
                    m.fcnet_activation = Activation::parse(s).ok_or_else(|| {
                        err(
                            origin,
                            Some(v),
                            Some(&path),
                            format!("unknown activation '{s}'; expected tanh, relu or linear"),
                        )
                    })?;
                }
                "vf_share_layers" => m.vf_share_layers = as_bool(origin, v, &path)?,
                _ => {
                    return Err(unknown_key(
                        origin,
                        k,
                        &path,
                        ["fcnet_hiddens", "fcnet_activation", "vf_share_layers"].into_iter(),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Checks settings that depend on each other.
    fn validate(&self, origin: &str, at: &Node) -> Result<(), ConfigError> {
        let c = &self.config;
        if c.minibatch_size > c.train_batch_size {
            return Err(err(
                origin,
                Some(at),
                Some("minibatch_size"),
                format!(
                    "{} is larger than train_batch_size {}; expected minibatch_size <= train_batch_size",
                    c.minibatch_size, c.train_batch_size
                ),
            ));
        }
        if let Some(s) = &c.lr_schedule
            && s.windows(2).any(|w| w[1].0 < w[0].0)
        {
            return Err(err(
                origin,
                Some(at),
                Some("lr_schedule"),
                "timesteps must not decrease".into(),
            ));
        }
        Ok(())
    }
}

/// Every config key this build understands (canonical names and aliases), for suggestions.
pub const CONFIG_KEYS: &[&str] = &[
    "env",
    "num_env_runners",
    "num_workers",
    "num_rollout_workers",
    "num_envs_per_env_runner",
    "num_envs_per_worker",
    "rollout_fragment_length",
    "train_batch_size",
    "train_batch_size_per_learner",
    "minibatch_size",
    "sgd_minibatch_size",
    "num_epochs",
    "num_sgd_iter",
    "lr",
    "lr_schedule",
    "gamma",
    "lambda",
    "lambda_",
    "clip_param",
    "vf_clip_param",
    "vf_loss_coeff",
    "entropy_coeff",
    "kl_coeff",
    "kl_target",
    "use_kl_loss",
    "grad_clip",
    "observation_filter",
    "model",
    "seed",
    "num_gpus",
    "num_gpus_per_learner",
    "evaluation_interval",
    "evaluation_duration",
    "framework",
    "enable_connectors",
    "enable_rl_module_and_learner",
    "enable_env_runner_and_connector_v2",
    "log_level",
];

fn parse_mapping(text: &str, origin: &str) -> Result<Option<Node>, ConfigError> {
    let node = yaml::parse(text).map_err(|e| ConfigError {
        origin: origin.to_string(),
        position: Some((e.line, e.col)),
        key: None,
        message: format!("YAML syntax error: {}", e.message),
    })?;
    match node {
        None => Ok(None),
        Some(n) if n.is_null() => Ok(None),
        Some(
            n @ Node {
                kind: Kind::Map(_), ..
            },
        ) => Ok(Some(n)),
        Some(n) => Err(err(
            origin,
            Some(&n),
            None,
            format!("expected a mapping, found {}", n.describe()),
        )),
    }
}

fn parse_stop(node: &Node, origin: &str, prefix: &str) -> Result<Vec<StopCriterion>, ConfigError> {
    if node.is_null() {
        return Ok(Vec::new());
    }
    let Kind::Map(entries) = &node.kind else {
        return Err(expected(
            origin,
            node,
            prefix,
            "a mapping of metric: threshold",
        ));
    };
    let mut out = Vec::new();
    for (k, v) in entries {
        let key = scalar_str(origin, k, "key")?;
        let path = format!("{prefix}.{key}");
        let Some((_, make)) = STOP_KEYS.iter().find(|(name, _)| *name == key) else {
            return Err(unknown_key(
                origin,
                k,
                &path,
                STOP_KEYS.iter().map(|(n, _)| *n),
            ));
        };
        let value = as_f64_in(origin, v, &path, f64::NEG_INFINITY, f64::INFINITY, true)?;
        let c = make(value);
        if matches!(
            c,
            StopCriterion::EnvSteps(_) | StopCriterion::TrainingIteration(_)
        ) && value < 0.0
        {
            return Err(err(
                origin,
                Some(v),
                Some(&path),
                format!("expected a count >= 0, found {value}"),
            ));
        }
        out.push(c);
    }
    Ok(out)
}

fn parse_schedule(
    origin: &str,
    v: &Node,
    path: &str,
) -> Result<Option<Vec<(u64, f64)>>, ConfigError> {
    if v.is_null() {
        return Ok(None);
    }
    let form = "a list of [timestep, lr] pairs, e.g. [[0, 0.001], [100000, 0.0001]]";
    let Kind::Seq(items) = &v.kind else {
        return Err(expected(origin, v, path, form));
    };
    let mut out = Vec::new();
    for item in items {
        match &item.kind {
            Kind::Seq(pair) if pair.len() == 2 => {
                out.push((
                    as_u64(origin, &pair[0], path)?,
                    as_f64_in(origin, &pair[1], path, 0.0, f64::INFINITY, true)?,
                ));
            }
            _ => return Err(expected(origin, item, path, form)),
        }
    }
    if out.is_empty() {
        return Err(expected(origin, v, path, form));
    }
    Ok(Some(out))
}
