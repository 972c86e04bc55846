//! RLlib's config language: tuned-example YAML files (`<experiment>: {env, run, stop, config}`),
//! `--config` / `--stop` mappings and flags, with RLlib's key names and their old aliases.
//!
//! Every error names where it comes from (file, line, column), the key, what was expected,
//! and for an unknown key the nearest known one. Input is bounded (size, nodes, nesting; see
//! [`yaml`]) and echoed values are cut short.

mod apply;
pub mod export;
pub mod reference;
mod values;
pub mod yaml;

use std::fmt;
use std::io::Read;
use std::path::Path;

use algorithms::AlgorithmConfig;
use algorithms::config::{self as keys, Algo, Key, KeyKind};

pub use self::values::{MAX_ECHO, fmt_num, nearest, short};
use self::values::{as_bool, as_f64_in, as_u64, err, expected, scalar_str, unknown_key};
use self::yaml::{Kind, Node};

/// The largest config text read (a file, or a `--config` / `--stop` flag).
pub const MAX_CONFIG_BYTES: usize = 1 << 20;

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
            write!(f, "{}: ", short(k))?;
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

/// What a stop key measures.
#[derive(Debug, Clone, Copy, PartialEq)]
enum StopKind {
    ReturnMean,
    EvaluationReturnMean,
    EnvSteps,
    Iterations,
    Seconds,
}

/// The stop keys RLlib and Tune accept, old and new, and what they mean.
const STOP_KEYS: &[(&str, StopKind)] = &[
    ("episode_reward_mean", StopKind::ReturnMean),
    ("sampler_results/episode_reward_mean", StopKind::ReturnMean),
    ("env_runners/episode_return_mean", StopKind::ReturnMean),
    ("episode_return_mean", StopKind::ReturnMean),
    (
        "evaluation/env_runners/episode_return_mean",
        StopKind::EvaluationReturnMean,
    ),
    (
        "evaluation/episode_reward_mean",
        StopKind::EvaluationReturnMean,
    ),
    ("timesteps_total", StopKind::EnvSteps),
    ("num_env_steps_sampled_lifetime", StopKind::EnvSteps),
    ("training_iteration", StopKind::Iterations),
    ("time_total_s", StopKind::Seconds),
];

/// Where a setting was given: its origin (file or flag), position and key path.
#[derive(Debug, Clone, PartialEq)]
pub struct Source {
    /// The file, or the flag the text came from.
    pub origin: String,
    /// Line and column (from 1), when known.
    pub position: Option<(usize, usize)>,
    /// The key's path (`exp.config.lr`).
    pub path: String,
}

impl Source {
    fn at(origin: &str, node: Option<&Node>, path: &str) -> Self {
        Source {
            origin: origin.to_string(),
            position: node.map(|n| (n.line, n.col)),
            path: path.to_string(),
        }
    }

    fn flag(flag: &str) -> Self {
        Source {
            origin: flag.to_string(),
            position: None,
            path: flag.trim_start_matches('-').replace('-', "_"),
        }
    }

    fn error(&self, message: String) -> ConfigError {
        ConfigError {
            origin: self.origin.clone(),
            position: self.position,
            key: Some(self.path.clone()),
            message,
        }
    }

    /// "line 7, column 5 of exp.yaml", for messages that name a second place.
    fn describe(&self) -> String {
        match self.position {
            Some((l, c)) => format!("{}:{l}:{c}", self.origin),
            None => self.origin.clone(),
        }
    }
}

/// A config key given explicitly (in a file's `config` or in `--config`), kept so that a
/// restored run can replay it on the checkpoint's config and refuse what may not change.
#[derive(Debug, Clone, PartialEq)]
struct Override {
    name: &'static str,
    /// The top-level key (a whole section for `model: {...}`).
    spec: Key,
    key: Node,
    value: Node,
    origin: String,
    path: String,
}

impl Override {
    fn source(&self) -> Source {
        Source::at(&self.origin, Some(&self.key), &self.path)
    }
}

/// A whole run: what `rllib train` executes.
#[derive(Debug, Clone, PartialEq)]
pub struct Experiment {
    /// The experiment's name, one safe path component (the YAML's top-level key with unsafe
    /// characters replaced, or `<algo>_<env>` from flags).
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
    /// Lines to print once: keys accepted but meaningless here, names rewritten.
    pub warnings: Vec<String>,
    /// The cluster to run the env runners on (`--address`: the head's `host:port` or `auto`);
    /// `None` runs everything in this process.
    pub address: Option<String>,
    stop_sources: Vec<Source>,
    overrides: Vec<Override>,
    run_source: Option<Source>,
    env_source: Option<Source>,
    /// Named from `--algo` and `--env` rather than a file (a restore then takes the
    /// checkpoint's experiment name).
    named_by_flags: bool,
    /// Keys given as `{grid_search: [...]}`: one trial per combination (Tune's grid).
    pub grid: Vec<GridKey>,
    /// Times to repeat the grid (the experiment's `num_samples`, as in Ray's experiment specs).
    pub num_samples: Option<u64>,
    /// Tune's scheduler for the experiment's trials (`scheduler: {type: pbt, ...}`).
    pub scheduler: Option<SchedulerSpec>,
}

/// A `scheduler:` mapping: its `type` (`fifo`, `asha`, `pbt`) and its settings, as
/// `--scheduler` and `--scheduler-config` give them.
#[derive(Debug, Clone, PartialEq)]
pub struct SchedulerSpec {
    /// `fifo`, `asha` or `pbt`.
    pub kind: String,
    /// Its settings (a JSON mapping).
    pub settings: serde_json::Map<String, serde_json::Value>,
    /// Where it was given (`file.yaml:7`), for errors.
    pub origin: String,
}

/// A config key searched over (`lr: {grid_search: [0.001, 0.0003]}`); every value has passed
/// the key's checks, and the first is applied to the experiment itself.
#[derive(Debug, Clone, PartialEq)]
pub struct GridKey {
    /// Its path (`config.lr`, `config.model.fcnet_hiddens`).
    pub path: String,
    /// The setting it names, however it was given (`lr`, `model.fcnet_hiddens`).
    pub setting: String,
    /// Its values, as written (for trial names and tables).
    pub shown: Vec<String>,
    key: Key,
    key_node: Node,
    values: Vec<Node>,
    origin: String,
}

/// See [`Experiment::setting`].
fn setting_of(path: &str, experiment: &str) -> String {
    let p = path
        .strip_prefix(experiment)
        .and_then(|p| p.strip_prefix('.'))
        .unwrap_or(path);
    p.strip_prefix("config.").unwrap_or(p).to_string()
}

/// A value as written, on one line: `0.001`, `[64, 64]`.
fn show(n: &Node) -> String {
    match &n.kind {
        Kind::Seq(items) => format!(
            "[{}]",
            items.iter().map(show).collect::<Vec<_>>().join(", ")
        ),
        Kind::Map(entries) => format!(
            "{{{}}}",
            entries
                .iter()
                .map(|(k, v)| format!("{}: {}", show(k), show(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        _ => n.scalar().unwrap_or_default().to_string(),
    }
}

/// The algorithms this build runs, by RLlib's names.
pub const ALGORITHMS: &[&str] = &["PPO", "DQN", "SAC", "BC", "MARWIL"];

/// The longest experiment name, in bytes (folder names are at most 255 on most systems, and
/// the trial folder adds to it).
pub const MAX_NAME_BYTES: usize = 128;

/// An experiment name as one safe folder name, as Ray cleans names: characters other than
/// letters, digits and `-_.+=,@` become `_`, and a leading `.` (a hidden or relative folder)
/// becomes `_`. Empty names, names of dots only and over-long names are refused.
pub fn safe_name(name: &str) -> Result<String, String> {
    let trimmed = name.trim();
    if trimmed.is_empty() {
        return Err("the experiment name is empty; expected a name such as `cartpole-ppo`".into());
    }
    if trimmed.chars().all(|c| c == '.') {
        return Err(format!(
            "'{trimmed}' is not a usable experiment name (it names a folder itself); expected a name such as `cartpole-ppo`"
        ));
    }
    if trimmed.len() > MAX_NAME_BYTES {
        return Err(format!(
            "the experiment name '{}' is longer than {MAX_NAME_BYTES} bytes",
            short(trimmed)
        ));
    }
    Ok(crate::fsio::safe_component(trimmed))
}

fn check_env_id(origin: &str, at: Option<&Node>, path: &str, id: &str) -> Result<(), ConfigError> {
    let ids = envs::ids();
    if ids.iter().any(|k| k == id) {
        return Ok(());
    }
    let hint = nearest(id, ids.iter().map(String::as_str))
        .map(|n| format!(" (did you mean '{n}'?)"))
        .unwrap_or_default();
    Err(err(
        origin,
        at,
        Some(path),
        format!(
            "unknown env id '{}'{hint}; registered: {}",
            short(id),
            ids.join(", ")
        ),
    ))
}

/// Reads a config file, at most [`MAX_CONFIG_BYTES`] of it.
fn read_config_file(path: &Path) -> Result<String, ConfigError> {
    let origin = path.display().to_string();
    let fail = |message: String| ConfigError {
        origin: origin.clone(),
        position: None,
        key: None,
        message,
    };
    if path.is_dir() {
        return Err(fail("is a folder, expected a YAML file".into()));
    }
    let file = std::fs::File::open(path).map_err(|e| {
        fail(format!(
            "cannot be read: {}",
            crate::fsio::describe(path, &e)
        ))
    })?;
    let mut bytes = Vec::new();
    file.take(MAX_CONFIG_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| {
            fail(format!(
                "cannot be read: {}",
                crate::fsio::describe(path, &e)
            ))
        })?;
    if bytes.len() > MAX_CONFIG_BYTES {
        return Err(fail(format!(
            "is larger than {} MiB; a config file is expected to be far smaller",
            MAX_CONFIG_BYTES >> 20
        )));
    }
    String::from_utf8(bytes).map_err(|e| {
        fail(format!(
            "is not UTF-8 text (invalid byte at offset {})",
            e.utf8_error().valid_up_to()
        ))
    })
}

impl Experiment {
    fn empty(name: String) -> Self {
        Experiment {
            name,
            run: String::new(),
            stop: Vec::new(),
            config: AlgorithmConfig::default(),
            checkpoint_frequency: 0,
            checkpoint_at_end: true,
            warnings: Vec::new(),
            address: None,
            stop_sources: Vec::new(),
            overrides: Vec::new(),
            run_source: None,
            env_source: None,
            named_by_flags: false,
            grid: Vec::new(),
            num_samples: None,
            scheduler: None,
        }
    }

    /// RLlib's defaults for `--algo` and `--env`.
    pub fn from_flags(algo: &str, env: &str) -> Result<Self, ConfigError> {
        Self::from_optional_flags(Some(algo), Some(env), Algo::Ppo)
    }

    /// RLlib's defaults for `--algo` and `--env`; an absent algorithm is `default` (PPO, or a
    /// restored checkpoint's), an absent env CartPole-v1 (or the checkpoint's, see
    /// [`restore_from`](Self::restore_from)).
    pub fn from_optional_flags(
        algo: Option<&str>,
        env: Option<&str>,
        default: Algo,
    ) -> Result<Self, ConfigError> {
        let mut e = Experiment::empty(String::new());
        e.named_by_flags = true;
        e.set_algorithm(algo.unwrap_or(default.name()), "--algo", None)?;
        e.run_source = algo.map(|_| Source::flag("--algo"));
        if let Some(env) = env {
            check_env_id("--env", None, "env", env)?;
            e.config.env = env.to_string();
            e.env_source = Some(Source::flag("--env"));
        }
        e.name = safe_name(&format!("{}_{}", e.run, e.config.env)).map_err(|m| ConfigError {
            origin: "--env".into(),
            position: None,
            key: None,
            message: m,
        })?;
        Ok(e)
    }

    fn set_algorithm(
        &mut self,
        algo: &str,
        origin: &str,
        at: Option<&Node>,
    ) -> Result<(), ConfigError> {
        // RLlib's registry accepts any case (`ppo`).
        let Some(known) = Algo::parse(algo) else {
            return Err(err(
                origin,
                at,
                Some("run"),
                format!(
                    "unknown algorithm '{}'; available: {}{}",
                    short(algo),
                    ALGORITHMS.join(", "),
                    nearest(algo, ALGORITHMS.iter().copied())
                        .map(|n| format!(" (did you mean '{n}'?)"))
                        .unwrap_or_default()
                ),
            ));
        };
        self.run = known.name().to_string();
        if self.config.algo != known {
            // Each algorithm starts from its own RLlib defaults.
            let env = std::mem::take(&mut self.config.env);
            self.config = AlgorithmConfig::new(known);
            self.config.env = env;
        }
        Ok(())
    }

    /// Reads a tuned-example file (at most [`MAX_CONFIG_BYTES`]).
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = read_config_file(path)?;
        Self::from_yaml(&text, &path.display().to_string())
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
        let written = scalar_str(origin, name_node, "experiment name")?;
        let name = safe_name(written).map_err(|m| err(origin, Some(name_node), None, m))?;
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
        let mut e = Experiment::empty(name.clone());
        if name != written {
            e.warnings.push(format!(
                "{origin}:{}: the experiment name '{}' is written as the folder name '{name}'",
                name_node.line,
                short(written)
            ));
        }
        // The algorithm first: its defaults and keys apply to the rest.
        let run_node = fields
            .iter()
            .find(|(k, _)| k.scalar() == Some("run"))
            .map(|(_, v)| v);
        let Some(run) = run_node else {
            return Err(err(
                origin,
                Some(name_node),
                Some(&name),
                "missing `run: <algorithm>` (e.g. `run: PPO`)".into(),
            ));
        };
        let algo = scalar_str(origin, run, "run")?;
        e.set_algorithm(algo, origin, Some(run))?;
        e.run_source = Some(Source::at(origin, Some(run), &format!("{name}.run")));
        let mut top_env: Option<(&Node, String)> = None;
        for (k, v) in fields {
            let key = scalar_str(origin, k, "key")?;
            match key {
                "env" => {
                    let id = scalar_str(origin, v, "env")?;
                    check_env_id(origin, Some(v), &format!("{name}.env"), id)?;
                    top_env = Some((v, id.to_string()));
                }
                "run" => {}
                "stop" => e.parse_stop(v, origin, &format!("{name}.stop"))?,
                "config" => e.apply_config(v, origin, &format!("{name}.config"))?,
                "checkpoint_config" => e.apply_checkpoint_config(v, origin, &name)?,
                "checkpoint_freq" => e.checkpoint_frequency = as_u64(origin, v, key)?,
                "checkpoint_at_end" => e.checkpoint_at_end = as_bool(origin, v, key)?,
                "num_samples" => {
                    let n = as_u64(origin, v, key)?;
                    if n == 0 {
                        return Err(expected(origin, v, key, "a whole number >= 1"));
                    }
                    e.num_samples = Some(n);
                }
                "scheduler" => {
                    let form = "a mapping with `type: fifo|asha|pbt` and its settings";
                    let serde_json::Value::Object(mut m) = values::to_json(v) else {
                        return Err(expected(origin, v, key, form));
                    };
                    let kind = match m.remove("type") {
                        Some(serde_json::Value::String(t)) => t,
                        _ => return Err(expected(origin, v, key, form)),
                    };
                    e.scheduler = Some(SchedulerSpec {
                        kind,
                        settings: m,
                        origin: format!("{origin}:{}", v.line),
                    });
                }
                _ => {
                    let known = [
                        "env",
                        "run",
                        "stop",
                        "config",
                        "checkpoint_config",
                        "checkpoint_freq",
                        "checkpoint_at_end",
                        "num_samples",
                        "scheduler",
                    ];
                    return Err(unknown_key(
                        origin,
                        k,
                        &format!("{name}.{key}"),
                        known.iter().copied(),
                    ));
                }
            }
        }
        let config_env = e.env_source.clone();
        match (top_env, config_env) {
            (Some((node, id)), Some(cfg_src)) => {
                if id != e.config.env {
                    return Err(err(
                        origin,
                        Some(node),
                        Some(&format!("{name}.env")),
                        format!(
                            "'{}' differs from config.env '{}' at {}; give the env once",
                            short(&id),
                            short(&e.config.env),
                            cfg_src.describe()
                        ),
                    ));
                }
            }
            (Some((node, id)), None) => {
                e.config.env = id;
                e.env_source = Some(Source::at(origin, Some(node), &format!("{name}.env")));
            }
            (None, Some(_)) => {}
            (None, None) => {
                return Err(err(
                    origin,
                    Some(name_node),
                    Some(&name),
                    "missing `env: <env id>` (e.g. `env: CartPole-v1`)".into(),
                ));
            }
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
    /// A setting given twice in one mapping, under its name and an old alias, is an error, and
    /// so is a key of another algorithm.
    pub fn apply_config(
        &mut self,
        node: &Node,
        origin: &str,
        prefix: &str,
    ) -> Result<(), ConfigError> {
        let Kind::Map(entries) = &node.kind else {
            return Err(expected(origin, node, prefix, "a mapping of config keys"));
        };
        let all = keys::keys();
        let mut given: Vec<(&'static str, &Node)> = Vec::new();
        for (k, v) in entries {
            let name = scalar_str(origin, k, "key")?;
            let path = format!("{prefix}.{name}");
            let Some(key) = all.iter().copied().find(|key| key.is(name)) else {
                let names = all
                    .iter()
                    .filter(|key| key.applies_to(self.config.algo))
                    .flat_map(|key| {
                        std::iter::once(key.name()).chain(key.aliases().iter().copied())
                    });
                return Err(unknown_key(origin, k, &path, names));
            };
            if let Some((_, first)) = given.iter().find(|(n, _)| *n == key.name()) {
                return Err(err(
                    origin,
                    Some(k),
                    Some(&path),
                    format!(
                        "the same setting as '{}' at line {}, column {} ({} is RLlib's current name); keep one",
                        first.scalar().unwrap_or_default(),
                        first.line,
                        first.col,
                        key.name()
                    ),
                ));
            }
            given.push((key.name(), k));
            self.apply_entry(key, k, v, origin, &path)?;
            self.overrides.push(Override {
                name: key.name(),
                spec: key,
                key: k.clone(),
                value: v.clone(),
                origin: origin.to_string(),
                path,
            });
        }
        Ok(())
    }

    /// Applies one key's value (walking a section's mapping).
    fn apply_entry(
        &mut self,
        key: Key,
        k: &Node,
        v: &Node,
        origin: &str,
        path: &str,
    ) -> Result<(), ConfigError> {
        let algo = self.config.algo;
        if !key.applies_to(algo) {
            return Err(err(
                origin,
                Some(k),
                Some(path),
                format!(
                    "a key of {}; this run is {algo}{}",
                    key.owners(),
                    match (algo, key.name()) {
                        (Algo::Sac, "lr" | "lr_schedule") =>
                            " (SAC has actor_lr, critic_lr and alpha_lr)",
                        _ => "",
                    }
                ),
            ));
        }
        match key.kind() {
            KeyKind::Section => {
                let Kind::Map(entries) = &v.kind else {
                    return Err(expected(origin, v, path, "a mapping"));
                };
                let children = key.children();
                for (ck, cv) in entries {
                    let name = scalar_str(origin, ck, "key")?;
                    let cpath = format!("{path}.{name}");
                    let Some(child) = children.iter().copied().find(|c| c.is(name)) else {
                        return Err(unknown_key(
                            origin,
                            ck,
                            &cpath,
                            children.iter().map(Key::name),
                        ));
                    };
                    self.apply_entry(child, ck, cv, origin, &cpath)?;
                }
            }
            KeyKind::Ignored => {
                if key.name() == "framework" {
                    let fw = scalar_str(origin, v, path)?;
                    self.warnings.push(format!(
                        "{origin}:{}: framework: {} is ignored: the learner is this project's own (Rust), on {}",
                        v.line,
                        short(fw),
                        self.config.device
                    ));
                }
            }
            kind => {
                // `{grid_search: [...]}`: every value checked now, the first one applied.
                if let Kind::Map(entries) = &v.kind
                    && let [(gk, gv)] = entries.as_slice()
                    && gk.scalar() == Some("grid_search")
                {
                    let Kind::Seq(values) = &gv.kind else {
                        return Err(expected(origin, gv, path, "a list of values to search"));
                    };
                    let Some(first) = values.first() else {
                        return Err(err(
                            origin,
                            Some(gv),
                            Some(path),
                            "grid_search([]) has no values".into(),
                        ));
                    };
                    for item in values {
                        let value = apply::value(origin, item, path, kind)?;
                        if kind_is_env(kind) {
                            check_env_id(origin, Some(item), path, value.str())?;
                        }
                    }
                    let entry = GridKey {
                        path: path.to_string(),
                        setting: self.setting(path),
                        shown: values.iter().map(show).collect(),
                        key,
                        key_node: k.clone(),
                        values: values.clone(),
                        origin: origin.to_string(),
                    };
                    // The first value first (it clears an earlier search over the key).
                    self.apply_entry(key, k, first, origin, path)?;
                    self.grid.push(entry);
                    return Ok(());
                }
                // A value given later (`--config`, a flag) replaces a search over the key.
                let id = self.setting(path);
                let name = self.name.clone();
                self.grid.retain(|g| setting_of(&g.path, &name) != id);
                let value = apply::value(origin, v, path, kind)?;
                if kind_is_env(kind) {
                    check_env_id(origin, Some(v), path, value.str())?;
                    self.env_source = Some(Source::at(origin, Some(v), path));
                }
                key.set(&mut self.config, &value);
            }
        }
        Ok(())
    }

    /// The setting a key path names, whichever way it was given: `lr` for
    /// `<experiment>.config.lr` (the file), `config.lr` (`--config`) and `lr` (a flag).
    fn setting(&self, path: &str) -> String {
        setting_of(path, &self.name)
    }

    /// The experiment of one grid combination: `pick[i]` is the index of the value of
    /// `grid[i]`; the result searches nothing.
    pub fn variant(&self, pick: &[usize]) -> Result<Experiment, ConfigError> {
        let mut e = self.clone();
        e.grid.clear();
        for (g, &i) in self.grid.iter().zip(pick) {
            let v = g.values.get(i).ok_or_else(|| ConfigError {
                origin: g.origin.clone(),
                position: None,
                key: Some(g.path.clone()),
                message: format!("no value {i} in its grid_search"),
            })?;
            e.apply_entry(g.key, &g.key_node, v, &g.origin, &g.path)?;
        }
        Ok(e)
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
        self.stop.clear();
        self.stop_sources.clear();
        if let Some(node) = parse_mapping(text, "--stop")? {
            self.parse_stop(&node, "--stop", "stop")?;
        }
        Ok(())
    }

    /// Sets a flag's value as if `--config` had set `name` (so a restored run checks it too).
    pub fn set_flag(&mut self, flag: &str, name: &str, value: &str) -> Result<(), ConfigError> {
        let node = Node {
            kind: Kind::Scalar {
                text: value.to_string(),
                quoted: false,
            },
            line: 1,
            col: 1,
        };
        let key = keys::lookup(name).ok_or_else(|| ConfigError {
            origin: flag.to_string(),
            position: None,
            key: None,
            message: format!("internal: no config key '{name}'"),
        })?;
        let mut e = |m: ConfigError| ConfigError {
            position: None,
            ..m
        };
        self.apply_entry(key, &node, &node, flag, name)
            .map_err(&mut e)?;
        self.overrides.push(Override {
            name: key.name(),
            spec: key,
            key: node.clone(),
            value: node,
            origin: flag.to_string(),
            path: name.to_string(),
        });
        Ok(())
    }

    /// The place of the last explicit setting of `name`, if any.
    fn source_of(&self, name: &str) -> Option<Source> {
        self.overrides
            .iter()
            .rev()
            .find(|o| o.name == name)
            .map(Override::source)
    }

    /// Takes a restored run's config from its checkpoint, as RLlib's `from_checkpoint` does:
    /// the checkpoint's algorithm, env and config, then the keys this experiment set
    /// explicitly (its file's `config`, `--config`, flags) replayed on top. Keys that shape
    /// learned state (the network, the observation filter, the env, the KL coefficient) may
    /// not change; each such change is refused by name.
    pub fn restore_from(
        &mut self,
        checkpoint: &str,
        algorithm: &str,
        env: &str,
        experiment: Option<&str>,
        config: &serde_json::Value,
    ) -> Result<(), ConfigError> {
        if let Some(src) = &self.run_source
            && !self.run.eq_ignore_ascii_case(algorithm)
        {
            return Err(src.error(format!(
                "{} differs from the checkpoint's algorithm {algorithm} ({checkpoint})",
                self.run
            )));
        }
        if let Some(src) = &self.env_source
            && self.config.env != env
        {
            return Err(src.error(format!(
                "{} differs from the checkpoint's env {} ({checkpoint})",
                short(&self.config.env),
                short(env)
            )));
        }
        let origin = format!("{checkpoint}/metadata.json");
        let saved = saved_experiment(&self.name, checkpoint, algorithm, config)?;
        let before = export::config_json(&saved.config, 0);
        let mut replayed = saved.clone();
        for o in &self.overrides {
            replayed.apply_entry(o.spec, &o.key, &o.value, &o.origin, &o.path)?;
        }
        let after = export::config_json(&replayed.config, 0);
        let restorable: Vec<&str> = keys::keys()
            .into_iter()
            .filter(|k| k.restorable() && k.applies_to(saved.config.algo))
            .filter(|k| !matches!(k.kind(), KeyKind::Ignored))
            .map(|k| k.name())
            .collect();
        // The last explicit setting of a key decides its value: that is the one to name.
        for (i, o) in self.overrides.iter().enumerate() {
            let last = !self.overrides[i + 1..].iter().any(|p| p.name == o.name);
            if o.spec.restorable() || !last {
                continue;
            }
            if let Some((key, was, now)) = first_difference(o.name, &before[o.name], &after[o.name])
            {
                return Err(o.source().error(format!(
                    "cannot change when restoring {checkpoint}: the checkpoint's {key} is {}, this run's would be {}. A restored run takes its config from the checkpoint; only these keys may change: {}",
                    short(&was),
                    short(&now),
                    restorable.join(", ")
                )));
            }
        }
        self.run = saved.run;
        self.config = replayed.config;
        if self.named_by_flags {
            let name = experiment.map_or_else(|| format!("{}_{env}", self.run), str::to_string);
            self.name = safe_name(&name).map_err(|m| ConfigError {
                origin: origin.clone(),
                position: None,
                key: Some("experiment".into()),
                message: m,
            })?;
        }
        Ok(())
    }

    /// Checks settings that depend on each other, once every source has been applied.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let c = &self.config;
        if c.algo == Algo::Ppo && c.ppo.minibatch_size > c.train_batch_size {
            let src = self
                .source_of("minibatch_size")
                .or_else(|| self.source_of("train_batch_size"))
                .unwrap_or_else(|| Source::flag("--config"));
            return Err(ConfigError {
                key: Some(src.path.replace("train_batch_size", "minibatch_size")),
                ..src.error(format!(
                    "{} is larger than train_batch_size {}; expected minibatch_size <= train_batch_size",
                    c.ppo.minibatch_size, c.train_batch_size
                ))
            });
        }
        if c.algo == Algo::Dqn {
            let bad = c.dqn.epsilon.first().is_some_and(|&(t, _)| t != 0)
                || c.dqn.epsilon.iter().any(|&(_, e)| e > 1.0);
            if c.dqn.epsilon.is_empty() || bad {
                let src = self
                    .source_of("epsilon")
                    .unwrap_or_else(|| Source::flag("--config"));
                return Err(src.error(
                    "expected a schedule starting at timestep 0 with values from 0 to 1, e.g. [[0, 1.0], [10000, 0.05]]".into(),
                ));
            }
        }
        let offline = matches!(c.algo, Algo::Bc | Algo::Marwil);
        if offline {
            let src = || {
                self.source_of("input")
                    .unwrap_or_else(|| Source::flag("--config"))
            };
            if c.input.is_none() {
                return Err(ConfigError {
                    key: Some("input".into()),
                    ..src().error(format!(
                        "{} learns from recorded episodes: set input to a folder, Parquet file or pattern of them (record them with `output: <dir>` in a training config, or `rllib evaluate <checkpoint> --output <dir>`)",
                        c.algo
                    ))
                });
            }
            if c.observation_filter == algorithms::ObservationFilter::MeanStdFilter {
                let src = self
                    .source_of("observation_filter")
                    .unwrap_or_else(|| Source::flag("--config"));
                return Err(src.error(format!(
                    "MeanStdFilter: {} learns from recorded raw observations, with no env runner to keep the filter's statistics; expected NoFilter",
                    c.algo
                )));
            }
        }
        for (s, src) in self.stop.iter().zip(&self.stop_sources) {
            if offline
                && matches!(
                    s,
                    StopCriterion::EpisodeReturnMean(_) | StopCriterion::EnvSteps(_)
                )
            {
                return Err(src.error(format!(
                    "can never be met: {} samples no env steps of its own (it learns from input); stop on evaluation/env_runners/episode_return_mean (with evaluation_interval) or training_iteration",
                    c.algo
                )));
            }
            if matches!(s, StopCriterion::EvaluationReturnMean(_))
                && c.evaluation_interval.is_none()
            {
                return Err(src.error(
                    "can never be met: the run does not evaluate; set evaluation_interval (e.g. 1) or stop on env_runners/episode_return_mean".into(),
                ));
            }
        }
        Ok(())
    }

    fn parse_stop(&mut self, node: &Node, origin: &str, prefix: &str) -> Result<(), ConfigError> {
        self.stop.clear();
        self.stop_sources.clear();
        if node.is_null() {
            return Ok(());
        }
        let Kind::Map(entries) = &node.kind else {
            return Err(expected(
                origin,
                node,
                prefix,
                "a mapping of metric: threshold",
            ));
        };
        for (k, v) in entries {
            let key = scalar_str(origin, k, "key")?;
            let path = format!("{prefix}.{key}");
            let Some((_, kind)) = STOP_KEYS.iter().find(|(name, _)| *name == key) else {
                return Err(unknown_key(
                    origin,
                    k,
                    &path,
                    STOP_KEYS.iter().map(|(n, _)| *n),
                ));
            };
            let value = as_f64_in(origin, v, &path, f64::NEG_INFINITY, f64::INFINITY, true)?;
            if !value.is_finite() {
                return Err(err(
                    origin,
                    Some(v),
                    Some(&path),
                    format!(
                        "{} can never be met (or is met at once); expected a finite number",
                        fmt_num(value)
                    ),
                ));
            }
            let count = || -> Result<u64, ConfigError> {
                // Whole counts up to 2^53, where every integer is exact in a metric's f64.
                if value < 0.0 || value.fract() != 0.0 || value > 9.007_199_254_740_992e15 {
                    return Err(err(
                        origin,
                        Some(v),
                        Some(&path),
                        format!(
                            "expected a whole number >= 0 (a count), found {}",
                            fmt_num(value)
                        ),
                    ));
                }
                Ok(value as u64)
            };
            let c = match kind {
                StopKind::ReturnMean => StopCriterion::EpisodeReturnMean(value),
                StopKind::EvaluationReturnMean => StopCriterion::EvaluationReturnMean(value),
                StopKind::EnvSteps => StopCriterion::EnvSteps(count()?),
                StopKind::Iterations => StopCriterion::TrainingIteration(count()?),
                StopKind::Seconds => StopCriterion::TimeTotalS(value),
            };
            self.stop.push(c);
            self.stop_sources.push(Source::at(origin, Some(k), &path));
        }
        Ok(())
    }
}

/// The first place where two exported values differ, as `(dotted key, was, now)`; nested
/// mappings (`model`) are compared key by key.
fn first_difference(
    key: &str,
    was: &serde_json::Value,
    now: &serde_json::Value,
) -> Option<(String, String, String)> {
    use serde_json::Value;
    match (was, now) {
        (Value::Object(a), Value::Object(b)) => a.iter().find_map(|(k, va)| {
            first_difference(&format!("{key}.{k}"), va, b.get(k).unwrap_or(&Value::Null))
        }),
        _ if was != now => Some((key.to_string(), was.to_string(), now.to_string())),
        _ => None,
    }
}

fn kind_is_env(kind: KeyKind) -> bool {
    matches!(kind, KeyKind::Env)
}

fn parse_mapping(text: &str, origin: &str) -> Result<Option<Node>, ConfigError> {
    if text.len() > MAX_CONFIG_BYTES {
        return Err(ConfigError {
            origin: origin.to_string(),
            position: None,
            key: None,
            message: format!(
                "is larger than {} MiB; a config is expected to be far smaller",
                MAX_CONFIG_BYTES >> 20
            ),
        });
    }
    let node = yaml::parse(text).map_err(|e| ConfigError {
        origin: origin.to_string(),
        position: Some((e.line, e.col)),
        key: None,
        message: if e.malformed {
            format!("YAML syntax error: {}", e.message)
        } else {
            e.message
        },
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

/// The experiment a checkpoint's `metadata.json` `config` describes (checked as a YAML file's
/// `config` would be).
fn saved_experiment(
    name: &str,
    checkpoint: &str,
    algorithm: &str,
    config: &serde_json::Value,
) -> Result<Experiment, ConfigError> {
    let origin = format!("{checkpoint}/metadata.json");
    let text = serde_json::to_string(config).map_err(|e| ConfigError {
        origin: origin.clone(),
        position: None,
        key: Some("config".into()),
        message: e.to_string(),
    })?;
    let node = parse_mapping(&text, &origin)?.ok_or_else(|| ConfigError {
        origin: origin.clone(),
        position: None,
        key: Some("config".into()),
        message: "is empty".into(),
    })?;
    let mut saved = Experiment::empty(name.to_string());
    saved.set_algorithm(algorithm, &origin, None)?;
    saved.apply_config(&node, &origin, "config")?;
    Ok(saved)
}

/// The config a checkpoint was trained with (for `rllib evaluate`).
pub fn checkpoint_config(
    checkpoint: &str,
    algorithm: &str,
    config: &serde_json::Value,
) -> Result<AlgorithmConfig, ConfigError> {
    Ok(saved_experiment("evaluate", checkpoint, algorithm, config)?.config)
}
