//! Checkpoints in RLlib's folder layout, as JSON and safetensors (no pickle):
//!
//! ```text
//! checkpoint_000010/
//!   metadata.json                                         format, versions, algorithm, env, spaces, module, counters, config
//!   learner_group/learner/rl_module/default_policy/module_state.safetensors   the module (torch names and shapes; targets as target.*)
//!   learner_group/learner/optimizer.safetensors           Adam moments (exp_avg.*, exp_avg_sq.*), steps in the metadata
//!   learner_group/learner/state.json                      the learner's scalars (KL coefficient, log α, generators, target counters)
//!   env_runner/state.json                                 MeanStdFilter statistics, episodes, runner states
//!   replay_buffer/buffer.safetensors, state.json          DQN's and SAC's replay buffer (store_buffer_in_checkpoints)
//! ```
//! A checkpoint is written into a temporary sibling folder and renamed into place, so a
//! crash never leaves a half-written checkpoint under a final name; a failed write (a full
//! disk) removes the temporary folder. Every number read back is validated (finite weights and
//! moments, non-negative variances, counters that leave room to count on, a filter where the
//! config has one) and a bad one is refused with the file and field. The files map to and from
//! the run's [`AlgorithmState`]; this module knows no algorithm.

mod io;
mod json;
mod replay;

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use algorithms::optim::OptimizerState;
use algorithms::{Algo, ModuleSpec, NamedTensor, ReturnStdFilter, RunningStat, Weights};
use envs::Space;
use serde_json::Value;

use self::io::{Raw, TensorFile, read_struct, read_value, write_json, write_safetensors};
use self::json::{
    LearnerStateJson, Metadata, RewardFilterJson, RunnerFileJson, RunnerJson, SpecJson, StatJson,
};
use crate::env_runner::{EpisodeStat, RunnerState};
use crate::fsio;
use crate::state::{AlgorithmState, Counters, LearnerState};

/// The format this build writes and reads.
pub const FORMAT_VERSION: u64 = 1;

/// The largest count a checkpoint may hold: 2^53, where every integer is exact in the f64
/// metrics and far from wrapping.
pub const MAX_COUNT: u64 = 1 << 53;

const MODULE_PATH: &str = "learner_group/learner/rl_module/default_policy/module_state.safetensors";
const OPTIMIZER_PATH: &str = "learner_group/learner/optimizer.safetensors";
const LEARNER_STATE_PATH: &str = "learner_group/learner/state.json";
const RUNNER_STATE_PATH: &str = "env_runner/state.json";
/// The optimizer whose moments are written without a prefix (PPO's and DQN's only one).
const DEFAULT_OPTIMIZER: &str = crate::learners::DEFAULT_OPTIMIZER;

/// A checkpoint that cannot be read or written, with the path and what is wrong.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct CheckpointError {
    /// The file or folder at fault.
    pub path: String,
    /// What is wrong and what was expected.
    pub message: String,
}

fn cerr(path: &Path, message: impl Into<String>) -> CheckpointError {
    CheckpointError {
        path: path.display().to_string(),
        message: message.into(),
    }
}

/// Everything a checkpoint holds.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    /// The folder it was read from.
    pub path: PathBuf,
    /// The algorithm, RLlib's name (`PPO`).
    pub algorithm: String,
    /// The env id.
    pub env: String,
    /// The experiment's name, when the checkpoint records it.
    pub experiment: Option<String>,
    /// The env's observation space when the checkpoint was written.
    pub observation_space: String,
    /// The env's action space when the checkpoint was written.
    pub action_space: String,
    /// The module's shape (a `Box` action's bounds are the env's, filled in by
    /// [`Checkpoint::check_env`]).
    pub spec: ModuleSpec,
    /// The run's seed.
    pub seed: u64,
    /// The full config, as written in metadata.json.
    pub config: Value,
    /// The run's state.
    pub state: AlgorithmState,
}

impl Checkpoint {
    /// The counters.
    pub fn counters(&self) -> Counters {
        self.state.counters
    }

    /// The module's weights.
    pub fn weights(&self) -> &Weights {
        &self.state.learner.weights
    }

    /// The `MeanStdFilter` statistics, if the run had the filter.
    pub fn filter(&self) -> Option<&RunningStat> {
        self.state.filter.as_ref()
    }

    /// Errors unless `env_id` is registered and has the spaces this checkpoint was trained on;
    /// fills in the module's `Box` action bounds from it.
    pub fn check_env(&mut self, env_id: &str) -> Result<(), CheckpointError> {
        let env = envs::make(env_id).map_err(|e| cerr(&self.path, e.to_string()))?;
        let (obs, act) = (
            env.observation_space().to_string(),
            env.action_space().to_string(),
        );
        if obs != self.observation_space || act != self.action_space {
            return Err(cerr(
                &self.path,
                format!(
                    "trained on spaces {} / {}, but {env_id} has {obs} / {act}",
                    self.observation_space, self.action_space
                ),
            ));
        }
        let fits = self.spec.obs_dim() == env.observation_space().flat_dim()
            && match env.action_space() {
                Space::Discrete { n, .. } => {
                    self.spec.action_dim() == 1
                        && self.spec.dist_width().max(1) as u64 <= *n.max(&1)
                }
                Space::Box { low, high, .. } => {
                    self.spec.set_action_bounds(low, high);
                    self.spec.action_dim() == low.len()
                }
            };
        if !fits {
            return Err(cerr(
                &self.path.join("metadata.json"),
                format!(
                    "'module_spec' ({}) does not fit {env_id}'s spaces {obs} / {act}",
                    self.spec.describe()
                ),
            ));
        }
        Ok(())
    }
}

/// What a run tells [`save`] besides its state.
#[derive(Debug, Clone, Copy)]
pub struct RunInfo<'a> {
    /// The module's shape.
    pub spec: &'a ModuleSpec,
    /// The env id.
    pub env: &'a str,
    /// The env's spaces.
    pub spaces: (&'a Space, &'a Space),
    /// The run's seed.
    pub seed: u64,
    /// The full config (RLlib's key names).
    pub config: &'a Value,
    /// The experiment's name.
    pub experiment: Option<&'a str>,
}

/// Writes a checkpoint of `state` as `<trial_dir>/checkpoint_<iteration>` and returns its
/// path. On any failure the temporary folder is removed and no checkpoint is left
/// half-written.
pub fn save(
    state: &AlgorithmState,
    run: RunInfo<'_>,
    trial_dir: &Path,
) -> Result<PathBuf, CheckpointError> {
    let name = format!("checkpoint_{:06}", state.counters.iteration);
    let final_dir = trial_dir.join(&name);
    let tmp = trial_dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let written = write_into(state, run, &tmp).and_then(|()| {
        if final_dir.exists() {
            fs::remove_dir_all(&final_dir).map_err(|e| cerr(&final_dir, e.to_string()))?;
        }
        fs::rename(&tmp, &final_dir).map_err(|e| cerr(&final_dir, e.to_string()))
    });
    match written {
        Ok(()) => Ok(final_dir),
        Err(e) => {
            // A full disk must not leave a hidden half-checkpoint behind.
            let _ = fs::remove_dir_all(&tmp);
            Err(e)
        }
    }
}

/// Writes a checkpoint of `state` into `dir` itself (a folder Tune hands out and then renames
/// to `checkpoint_<iteration>`). On failure `dir` is removed.
pub fn save_into(
    state: &AlgorithmState,
    run: RunInfo<'_>,
    dir: &Path,
) -> Result<(), CheckpointError> {
    write_into(state, run, dir).inspect_err(|_| {
        let _ = fs::remove_dir_all(dir);
    })
}

fn write_into(s: &AlgorithmState, run: RunInfo<'_>, tmp: &Path) -> Result<(), CheckpointError> {
    if tmp.exists() {
        fs::remove_dir_all(tmp).map_err(|e| cerr(tmp, e.to_string()))?;
    }
    let module_dir = tmp.join("learner_group/learner/rl_module/default_policy");
    fs::create_dir_all(&module_dir).map_err(|e| cerr(&module_dir, e.to_string()))?;
    fs::create_dir_all(tmp.join("env_runner")).map_err(|e| cerr(tmp, e.to_string()))?;

    let l = &s.learner;
    let weights: Vec<Raw> = l
        .weights
        .tensors
        .iter()
        .map(|t| Raw::f32(t.name.clone(), t.shape.clone(), &t.data))
        .collect();
    write_safetensors(
        &tmp.join(MODULE_PATH),
        &weights,
        HashMap::from([("format".to_string(), "pt".to_string())]),
    )?;
    let mut moments = Vec::new();
    let mut meta = HashMap::new();
    for (name, opt) in &l.optimizers {
        let step_key = if name == DEFAULT_OPTIMIZER {
            "step".to_string()
        } else {
            format!("step.{name}")
        };
        meta.insert(step_key, opt.step.to_string());
        for (kind, part) in [("exp_avg", &opt.exp_avg), ("exp_avg_sq", &opt.exp_avg_sq)] {
            moments.extend(
                part.iter()
                    .map(|t| Raw::f32(format!("{kind}.{}", t.name), t.shape.clone(), &t.data)),
            );
        }
    }
    write_safetensors(&tmp.join(OPTIMIZER_PATH), &moments, meta)?;
    let (last, num) = l.target_counters.unzip();
    write_json(
        &tmp.join(LEARNER_STATE_PATH),
        &LearnerStateJson {
            kl_coeff: l.kl_coeff,
            shuffle_rng: l.rng.filter(|_| l.kl_coeff.is_some()).map(Into::into),
            rng: l.rng.filter(|_| l.kl_coeff.is_none()).map(Into::into),
            log_alpha: l.log_alpha,
            moving_average_sqd_adv_norm: l.sqd_adv_norm,
            last_target_update: last,
            num_target_updates: num,
        },
    )?;
    write_json(
        &tmp.join(RUNNER_STATE_PATH),
        &RunnerFileJson {
            filter: s.filter.as_ref().map(|f| StatJson {
                count: f.count,
                mean: f.mean.clone(),
                m2: f.m2.clone(),
            }),
            episode_window: s.episode_window.iter().map(|e| (e.ret, e.len)).collect(),
            num_env_runner_restarts: s.num_env_runner_restarts,
            runners: s.runners.as_ref().map(|rs| {
                rs.iter()
                    .map(|r| RunnerJson {
                        envs: r.envs.clone(),
                        obs_bits: r.obs.iter().map(|v| v.to_bits()).collect(),
                        episode_returns: r.episode_returns.clone(),
                        episode_lens: r.episode_lens.clone(),
                        rng: r.rng.into(),
                        steps: r.steps,
                        policy_bits: r.policy.iter().map(|v| v.to_bits()).collect(),
                        reward_filter: r.reward_filter.as_ref().map(|f| RewardFilterJson {
                            gamma: f.gamma,
                            returns: f.returns.clone(),
                            count: f.count,
                            mean: f.mean,
                            var: f.var,
                        }),
                    })
                    .collect()
            }),
        },
    )?;
    if let Some(buffer) = &s.replay {
        replay::write(buffer, tmp)?;
    }
    let (obs_space, act_space) = run.spaces;
    let c = s.counters;
    let metadata = Metadata {
        format_version: FORMAT_VERSION,
        crate_version: env!("CARGO_PKG_VERSION").to_string(),
        algorithm: run.spec.algo().name().to_string(),
        env: run.env.to_string(),
        experiment: run.experiment.map(str::to_string),
        observation_space: obs_space.to_string(),
        action_space: act_space.to_string(),
        module_spec: SpecJson::of(run.spec),
        training_iteration: c.iteration,
        num_env_steps_sampled_lifetime: c.env_steps,
        num_episodes_lifetime: c.episodes,
        time_total_s: c.time_total_s,
        seed: run.seed,
        config: run.config.clone(),
    };
    // metadata.json last: a folder without it is not a checkpoint.
    write_json(&tmp.join("metadata.json"), &metadata)
}

pub(super) fn check_count(path: &Path, field: &str, v: u64) -> Result<u64, CheckpointError> {
    if v > MAX_COUNT {
        return Err(cerr(
            path,
            format!("'{field}' is {v}, more than a run can count to (2^53)"),
        ));
    }
    Ok(v)
}

fn check_finite(
    path: &Path,
    field: &str,
    values: &[f64],
    non_negative: bool,
) -> Result<(), CheckpointError> {
    for (i, &v) in values.iter().enumerate() {
        if !v.is_finite() || (non_negative && v < 0.0) {
            let want = if non_negative {
                "a finite number >= 0"
            } else {
                "a finite number"
            };
            return Err(cerr(
                path,
                format!(
                    "'{field}' holds {} at index {i}; expected {want}",
                    crate::config::fmt_num(v)
                ),
            ));
        }
    }
    Ok(())
}

/// The byte size of `f32` tensors of these shapes (saturating: a hostile spec cannot
/// overflow it), plus a header's slack.
fn tensor_bytes<'a>(shapes: impl Iterator<Item = &'a Vec<usize>>) -> u64 {
    shapes
        .map(|s| s.iter().fold(4u64, |acc, &d| acc.saturating_mul(d as u64)))
        .fold(0u64, u64::saturating_add)
        .saturating_add(1 << 20)
}

/// Reads and checks a checkpoint folder.
pub fn load(dir: &Path) -> Result<Checkpoint, CheckpointError> {
    match fs::metadata(dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(cerr(
                dir,
                "is not a folder; expected a checkpoint folder (checkpoint_NNNNNN)",
            ));
        }
        Err(e) => return Err(cerr(dir, fsio::describe(dir, &e))),
    }
    let meta_path = dir.join("metadata.json");
    if fs::symlink_metadata(&meta_path).is_err() {
        return Err(cerr(dir, "is not a checkpoint: it has no metadata.json"));
    }
    let meta_value = read_value(&meta_path)?;
    if let Some(v) = meta_value.get("format_version").and_then(Value::as_u64)
        && v > FORMAT_VERSION
    {
        return Err(cerr(
            &meta_path,
            format!(
                "format_version {v} is newer than this build reads ({FORMAT_VERSION}); upgrade rllib (this is {})",
                env!("CARGO_PKG_VERSION")
            ),
        ));
    }
    let meta: Metadata = io::from_value(&meta_path, meta_value)?;
    let algo = Algo::parse(&meta.algorithm).ok_or_else(|| {
        cerr(
            &meta_path,
            format!(
                "'algorithm': unknown algorithm '{}'",
                crate::config::short(&meta.algorithm)
            ),
        )
    })?;
    let spec = meta
        .module_spec
        .spec(algo)
        .map_err(|m| cerr(&meta_path, m))?;
    if !meta.time_total_s.is_finite() || meta.time_total_s < 0.0 {
        return Err(cerr(
            &meta_path,
            format!(
                "'time_total_s' is {}; expected a finite number >= 0",
                crate::config::fmt_num(meta.time_total_s)
            ),
        ));
    }
    let counters = Counters {
        iteration: check_count(&meta_path, "training_iteration", meta.training_iteration)?,
        env_steps: check_count(
            &meta_path,
            "num_env_steps_sampled_lifetime",
            meta.num_env_steps_sampled_lifetime,
        )?,
        episodes: check_count(
            &meta_path,
            "num_episodes_lifetime",
            meta.num_episodes_lifetime,
        )?,
        time_total_s: meta.time_total_s,
    };
    if !meta.config.is_object() {
        return Err(cerr(
            &meta_path,
            "'config' must be a mapping of config keys",
        ));
    }
    let wants_filter = meta
        .config
        .get("observation_filter")
        .and_then(Value::as_str)
        == Some("MeanStdFilter");

    // The module and the optimizers' moments.
    let shapes = spec.parameter_shapes();
    let module_path = dir.join(MODULE_PATH);
    let module = TensorFile::read(&module_path, tensor_bytes(shapes.iter().map(|(_, s)| s)))?;
    let weights = Weights {
        tensors: shapes
            .iter()
            .map(|(name, shape)| {
                Ok(NamedTensor {
                    name: name.clone(),
                    shape: shape.clone(),
                    data: module.f32(name, shape)?,
                })
            })
            .collect::<Result<_, CheckpointError>>()?,
    };
    let opt_path = dir.join(OPTIMIZER_PATH);
    let layout = spec.optimizer_params();
    let opt_shapes = layout.iter().flat_map(|(_, p)| p.iter().map(|(_, s)| s));
    let opt_file = TensorFile::read(&opt_path, tensor_bytes(opt_shapes).saturating_mul(2))?;
    let mut optimizers = Vec::new();
    for (name, params) in &layout {
        let step_key = if name == DEFAULT_OPTIMIZER {
            "step".to_string()
        } else {
            format!("step.{name}")
        };
        let step = opt_file
            .meta
            .get(&step_key)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| {
                cerr(
                    &opt_path,
                    format!("missing or malformed '{step_key}' in the safetensors metadata"),
                )
            })?;
        check_count(&opt_path, &step_key, step)?;
        let read = |kind: &str| -> Result<Vec<NamedTensor>, CheckpointError> {
            params
                .iter()
                .map(|(p, shape)| {
                    Ok(NamedTensor {
                        name: p.clone(),
                        shape: shape.clone(),
                        data: opt_file.f32(&format!("{kind}.{p}"), shape)?,
                    })
                })
                .collect()
        };
        let exp_avg = read("exp_avg")?;
        let exp_avg_sq = read("exp_avg_sq")?;
        if let Some(t) = exp_avg_sq.iter().find(|t| t.data.iter().any(|&v| v < 0.0)) {
            return Err(cerr(
                &opt_path,
                format!(
                    "tensor 'exp_avg_sq.{}' holds a negative value; second moments are >= 0",
                    t.name
                ),
            ));
        }
        optimizers.push((
            name.clone(),
            OptimizerState {
                step,
                exp_avg,
                exp_avg_sq,
            },
        ));
    }

    // The learner's scalars.
    let ls_path = dir.join(LEARNER_STATE_PATH);
    let ls: LearnerStateJson = read_struct(&ls_path)?;
    let need = |present: bool, field: &str| {
        if present {
            Ok(())
        } else {
            Err(cerr(
                &ls_path,
                format!("missing key '{field}' ({} keeps it)", algo),
            ))
        }
    };
    match algo {
        Algo::Ppo => {
            need(ls.kl_coeff.is_some(), "kl_coeff")?;
            need(ls.shuffle_rng.is_some(), "shuffle_rng")?;
        }
        Algo::Dqn => need(ls.last_target_update.is_some(), "last_target_update")?,
        Algo::Bc | Algo::Marwil => need(
            ls.moving_average_sqd_adv_norm.is_some(),
            "moving_average_sqd_adv_norm",
        )?,
        Algo::Sac => {
            need(ls.log_alpha.is_some(), "log_alpha")?;
            need(ls.rng.is_some(), "rng")?;
            need(ls.last_target_update.is_some(), "last_target_update")?;
        }
    }
    if let Some(k) = ls.kl_coeff
        && (!k.is_finite() || k < 0.0)
    {
        return Err(cerr(
            &ls_path,
            format!(
                "'kl_coeff' is {}; expected a finite number >= 0",
                crate::config::fmt_num(k)
            ),
        ));
    }
    if let Some(c) = ls.moving_average_sqd_adv_norm
        && (!c.is_finite() || c < 0.0)
    {
        return Err(cerr(
            &ls_path,
            format!(
                "'moving_average_sqd_adv_norm' is {}; expected a finite number >= 0",
                crate::config::fmt_num(c)
            ),
        ));
    }
    if let Some(a) = ls.log_alpha
        && !a.is_finite()
    {
        return Err(cerr(
            &ls_path,
            format!("'log_alpha' is {a}; expected a finite number"),
        ));
    }
    let target_counters = match (ls.last_target_update, ls.num_target_updates) {
        (Some(last), n) => Some((
            check_count(&ls_path, "last_target_update", last)?,
            check_count(&ls_path, "num_target_updates", n.unwrap_or(0))?,
        )),
        (None, _) => None,
    };
    let learner = LearnerState {
        weights,
        optimizers,
        kl_coeff: ls.kl_coeff,
        rng: ls.shuffle_rng.or(ls.rng).map(json::RngJson::pair),
        log_alpha: ls.log_alpha,
        target_counters,
        sqd_adv_norm: ls.moving_average_sqd_adv_norm,
    };

    // The env runners.
    let rs_path = dir.join(RUNNER_STATE_PATH);
    let rs: RunnerFileJson = read_struct(&rs_path)?;
    let obs_dim = spec.obs_dim();
    let filter = match rs.filter {
        None if wants_filter => {
            return Err(cerr(
                &rs_path,
                "'filter' is null, but the checkpoint's config has observation_filter: MeanStdFilter; its statistics are part of the policy",
            ));
        }
        None => None,
        Some(_) if !wants_filter => {
            return Err(cerr(
                &rs_path,
                "'filter' holds statistics, but the checkpoint's config has no observation_filter: MeanStdFilter",
            ));
        }
        Some(f) => {
            if f.mean.len() != obs_dim || f.m2.len() != obs_dim {
                return Err(cerr(
                    &rs_path,
                    format!(
                        "filter statistics have {} values, expected {obs_dim}",
                        f.mean.len()
                    ),
                ));
            }
            check_count(&rs_path, "filter.count", f.count)?;
            check_finite(&rs_path, "filter.mean", &f.mean, false)?;
            check_finite(&rs_path, "filter.m2", &f.m2, true)?;
            Some(RunningStat {
                count: f.count,
                mean: f.mean,
                m2: f.m2,
            })
        }
    };
    let max_window = meta
        .config
        .get("metrics_num_episodes_for_smoothing")
        .and_then(Value::as_u64)
        .unwrap_or(100) as usize;
    if rs.episode_window.len() > max_window {
        return Err(cerr(
            &rs_path,
            format!(
                "'episode_window' holds {} episodes, at most {max_window} are kept",
                rs.episode_window.len()
            ),
        ));
    }
    let returns: Vec<f64> = rs.episode_window.iter().map(|e| e.0).collect();
    check_finite(&rs_path, "episode_window", &returns, false)?;
    let runners = match rs.runners {
        None => None,
        Some(list) => {
            let mut out = Vec::with_capacity(list.len());
            for (i, r) in list.into_iter().enumerate() {
                let obs: Vec<f32> = r.obs_bits.iter().map(|&b| f32::from_bits(b)).collect();
                let field = format!("runners[{i}]");
                if obs.iter().any(|v| !v.is_finite()) {
                    return Err(cerr(
                        &rs_path,
                        format!("'{field}.obs_bits' holds a non-finite observation"),
                    ));
                }
                if r.envs.len() != r.episode_returns.len()
                    || r.envs.len() != r.episode_lens.len()
                    || obs.len() != r.envs.len() * obs_dim
                {
                    return Err(cerr(
                        &rs_path,
                        format!(
                            "'{field}': {} env states, {} returns, {} lengths and {} observation values do not fit together",
                            r.envs.len(),
                            r.episode_returns.len(),
                            r.episode_lens.len(),
                            obs.len()
                        ),
                    ));
                }
                check_finite(
                    &rs_path,
                    &format!("{field}.episode_returns"),
                    &r.episode_returns,
                    false,
                )?;
                let reward_filter = match r.reward_filter {
                    None => None,
                    Some(f) => {
                        let at = |k: &str| format!("{field}.reward_filter.{k}");
                        if f.returns.len() != r.envs.len() {
                            return Err(cerr(
                                &rs_path,
                                format!(
                                    "'{}' holds {} returns for {} envs",
                                    at("returns"),
                                    f.returns.len(),
                                    r.envs.len()
                                ),
                            ));
                        }
                        check_finite(&rs_path, &at("returns"), &f.returns, false)?;
                        check_finite(&rs_path, &at("mean"), &[f.mean], false)?;
                        check_finite(&rs_path, &at("var"), &[f.var], true)?;
                        check_finite(&rs_path, &at("count"), &[f.count], true)?;
                        if !(0.0..=1.0).contains(&f.gamma) {
                            return Err(cerr(
                                &rs_path,
                                format!(
                                    "'{}' is {}; expected a number in [0, 1]",
                                    at("gamma"),
                                    crate::config::fmt_num(f.gamma)
                                ),
                            ));
                        }
                        Some(ReturnStdFilter {
                            gamma: f.gamma,
                            returns: f.returns,
                            count: f.count,
                            mean: f.mean,
                            var: f.var,
                        })
                    }
                };
                out.push(RunnerState {
                    reward_filter,
                    envs: r.envs,
                    obs,
                    episode_returns: r.episode_returns,
                    episode_lens: r.episode_lens,
                    rng: r.rng.pair(),
                    steps: check_count(&rs_path, &format!("{field}.steps"), r.steps)?,
                    policy: r.policy_bits.iter().map(|&b| f32::from_bits(b)).collect(),
                });
            }
            Some(out)
        }
    };
    let replay = replay::read(dir, &spec)?;
    Ok(Checkpoint {
        path: dir.to_path_buf(),
        algorithm: algo.name().to_string(),
        env: meta.env,
        experiment: meta.experiment,
        observation_space: meta.observation_space,
        action_space: meta.action_space,
        spec,
        seed: meta.seed,
        config: meta.config,
        state: AlgorithmState {
            counters,
            filter,
            episode_window: rs
                .episode_window
                .into_iter()
                .map(|(ret, len)| EpisodeStat { ret, len })
                .collect(),
            num_env_runner_restarts: check_count(
                &rs_path,
                "num_env_runner_restarts",
                rs.num_env_runner_restarts,
            )?,
            runners,
            learner,
            replay,
        },
    })
}
