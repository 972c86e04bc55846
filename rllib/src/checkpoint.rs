//! Checkpoints in RLlib's folder layout, as JSON and safetensors (no pickle):
//!
//! ```text
//! checkpoint_000010/
//!   metadata.json                                         format, versions, algorithm, env, spaces, counters, config
//!   learner_group/learner/rl_module/default_policy/module_state.safetensors   weights (torch names and shapes)
//!   learner_group/learner/optimizer.safetensors           Adam moments (exp_avg.*, exp_avg_sq.*), step in metadata
//!   learner_group/learner/state.json                      KL coefficient, shuffling generator state
//!   env_runner/state.json                                 MeanStdFilter statistics, episodes, runner states
//! ```
//! A checkpoint is written into a temporary sibling folder and renamed into place, so a
//! crash never leaves a half-written checkpoint under a final name; a failed write (a full
//! disk) removes the temporary folder.
//!
//! The JSON files are plain serde structs. Every number read back is validated (finite
//! weights and moments, non-negative variances, counters that leave room to count on, a filter
//! where the config has one) and a bad one is refused with the file and field.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use algorithms::{
    ActionSpec, Activation, ModelConfig, NamedTensor, OptimizerState, PpoModuleSpec, RunningStat,
    Weights,
};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::algorithm::{Algorithm, Counters, SMOOTHING_EPISODES};
use crate::config::export::config_json;
use crate::env_runner::{EpisodeStat, RunnerState};
use crate::fsio;

/// The format this build writes and reads.
pub const FORMAT_VERSION: u64 = 1;

/// The largest count a checkpoint may hold: 2^53, where every integer is exact in the f64
/// metrics and far from wrapping.
pub const MAX_COUNT: u64 = 1 << 53;

const MODULE_PATH: &str = "learner_group/learner/rl_module/default_policy/module_state.safetensors";
const OPTIMIZER_PATH: &str = "learner_group/learner/optimizer.safetensors";
const LEARNER_STATE_PATH: &str = "learner_group/learner/state.json";
const RUNNER_STATE_PATH: &str = "env_runner/state.json";
/// The largest JSON file read from a checkpoint.
const MAX_JSON_BYTES: u64 = 256 << 20;

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
    /// The algorithm (`PPO`).
    pub algorithm: String,
    /// The env id.
    pub env: String,
    /// The experiment's name, when the checkpoint records it.
    pub experiment: Option<String>,
    /// The env's observation space when the checkpoint was written.
    pub observation_space: String,
    /// The env's action space when the checkpoint was written.
    pub action_space: String,
    /// The network's shape.
    /// The module's shape (a `Box` action's bounds are the env's, filled in by
    /// [`Checkpoint::check_env`]).
    pub spec: PpoModuleSpec,
    /// The run's seed.
    pub seed: u64,
    /// Counters at the time of the checkpoint.
    pub counters: Counters,
    /// The full config, as written in metadata.json.
    pub config: Value,
    /// Module weights.
    pub weights: Weights,
    /// Adam's state.
    pub optimizer: OptimizerState,
    /// The adaptive KL coefficient.
    pub kl_coeff: f64,
    /// The learner's shuffling generator state `(state, increment)`.
    pub shuffle_rng: (u128, u128),
    /// MeanStdFilter statistics, if the run used the filter.
    pub filter: Option<RunningStat>,
    /// The last 100 finished episodes.
    pub episode_window: Vec<EpisodeStat>,
    /// Env runners replaced so far.
    pub num_env_runner_restarts: u64,
    /// Each env runner's state, if its env could save its state.
    pub runners: Option<Vec<RunnerState>>,
}

// The files' JSON, as serde structs.

/// A 128-bit generator word, written as a hexadecimal string ("0x1f").
#[derive(Debug, Clone, Copy, PartialEq)]
struct Hex(u128);

impl Serialize for Hex {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{:#x}", self.0))
    }
}

impl<'de> Deserialize<'de> for Hex {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.strip_prefix("0x")
            .and_then(|h| u128::from_str_radix(h, 16).ok())
            .map(Hex)
            .ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "expected a hexadecimal string like \"0x1f\", found \"{}\"",
                    crate::config::short(&s)
                ))
            })
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RngJson {
    state: Hex,
    increment: Hex,
}

impl From<(u128, u128)> for RngJson {
    fn from((state, increment): (u128, u128)) -> Self {
        RngJson {
            state: Hex(state),
            increment: Hex(increment),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct SpecJson {
    obs_dim: usize,
    /// Discrete actions (0 for a `Box`).
    num_actions: usize,
    /// Values per `Box` action (absent or 0 for `Discrete`).
    #[serde(default, skip_serializing_if = "is_zero")]
    action_dim: usize,
    fcnet_hiddens: Vec<usize>,
    fcnet_activation: String,
    vf_share_layers: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Metadata {
    format_version: u64,
    crate_version: String,
    algorithm: String,
    env: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    experiment: Option<String>,
    observation_space: String,
    action_space: String,
    module_spec: SpecJson,
    training_iteration: u64,
    num_env_steps_sampled_lifetime: u64,
    num_episodes_lifetime: u64,
    time_total_s: f64,
    seed: u64,
    config: Value,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct LearnerStateJson {
    kl_coeff: f64,
    shuffle_rng: RngJson,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StatJson {
    count: u64,
    mean: Vec<f64>,
    m2: Vec<f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RunnerJson {
    envs: Vec<Vec<u64>>,
    obs_bits: Vec<u32>,
    episode_returns: Vec<f64>,
    episode_lens: Vec<u32>,
    rng: RngJson,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RunnerFileJson {
    filter: Option<StatJson>,
    #[serde(default)]
    episode_window: Vec<(f64, u32)>,
    #[serde(default)]
    num_env_runner_restarts: u64,
    #[serde(default)]
    runners: Option<Vec<RunnerJson>>,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

fn to_bytes(data: &[f32]) -> Vec<u8> {
    data.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn write_safetensors(
    path: &Path,
    tensors: &[(String, &NamedTensor)],
    meta: HashMap<String, String>,
) -> Result<(), CheckpointError> {
    let bytes: Vec<(String, Vec<u8>, Vec<usize>)> = tensors
        .iter()
        .map(|(name, t)| (name.clone(), to_bytes(&t.data), t.shape.clone()))
        .collect();
    let views = bytes
        .iter()
        .map(|(name, b, shape)| {
            TensorView::new(Dtype::F32, shape.clone(), b)
                .map(|v| (name.clone(), v))
                .map_err(|e| cerr(path, e.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let out =
        safetensors::tensor::serialize(views, Some(meta)).map_err(|e| cerr(path, e.to_string()))?;
    fs::write(path, out).map_err(|e| cerr(path, e.to_string()))
}

fn write_json(path: &Path, v: &impl Serialize) -> Result<(), CheckpointError> {
    let text = serde_json::to_string_pretty(v).map_err(|e| cerr(path, e.to_string()))?;
    fs::write(path, text + "\n").map_err(|e| cerr(path, e.to_string()))
}

/// Writes a checkpoint of `algo` as `<trial_dir>/checkpoint_<iteration>` and returns its path.
/// On any failure the temporary folder is removed and no checkpoint is left half-written.
pub fn save(
    algo: &Algorithm,
    trial_dir: &Path,
    experiment: Option<&str>,
) -> Result<PathBuf, CheckpointError> {
    let name = format!("checkpoint_{:06}", algo.counters().iteration);
    let final_dir = trial_dir.join(&name);
    let tmp = trial_dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let written = write_into(algo, &tmp, experiment).and_then(|()| {
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

fn write_into(
    algo: &Algorithm,
    tmp: &Path,
    experiment: Option<&str>,
) -> Result<(), CheckpointError> {
    let counters = algo.counters();
    if tmp.exists() {
        fs::remove_dir_all(tmp).map_err(|e| cerr(tmp, e.to_string()))?;
    }
    let module_dir = tmp.join("learner_group/learner/rl_module/default_policy");
    fs::create_dir_all(&module_dir).map_err(|e| cerr(&module_dir, e.to_string()))?;
    fs::create_dir_all(tmp.join("env_runner")).map_err(|e| cerr(tmp, e.to_string()))?;

    let learner = algo.learner();
    let weights = learner.weights().map_err(|e| cerr(tmp, e.to_string()))?;
    let opt = learner
        .optimizer_state()
        .map_err(|e| cerr(tmp, e.to_string()))?;
    let named: Vec<(String, &NamedTensor)> = weights
        .tensors
        .iter()
        .map(|t| (t.name.clone(), t))
        .collect();
    write_safetensors(
        &tmp.join(MODULE_PATH),
        &named,
        HashMap::from([("format".to_string(), "pt".to_string())]),
    )?;
    let mut moments: Vec<(String, &NamedTensor)> = opt
        .exp_avg
        .iter()
        .map(|t| (format!("exp_avg.{}", t.name), t))
        .collect();
    moments.extend(
        opt.exp_avg_sq
            .iter()
            .map(|t| (format!("exp_avg_sq.{}", t.name), t)),
    );
    write_safetensors(
        &tmp.join(OPTIMIZER_PATH),
        &moments,
        HashMap::from([("step".to_string(), opt.step.to_string())]),
    )?;
    write_json(
        &tmp.join(LEARNER_STATE_PATH),
        &LearnerStateJson {
            kl_coeff: learner.kl_coeff(),
            shuffle_rng: learner.rng_state().into(),
        },
    )?;
    let runners = algo
        .runner_states()
        .map_err(|e| cerr(tmp, format!("env runner state: {e}")))?;
    write_json(
        &tmp.join(RUNNER_STATE_PATH),
        &RunnerFileJson {
            filter: algo.filter().map(|s| StatJson {
                count: s.count,
                mean: s.mean.clone(),
                m2: s.m2.clone(),
            }),
            episode_window: algo
                .episode_window()
                .iter()
                .map(|e| (e.ret, e.len))
                .collect(),
            num_env_runner_restarts: algo.num_restarts(),
            runners: runners.map(|rs| {
                rs.into_iter()
                    .map(|r| RunnerJson {
                        envs: r.envs,
                        obs_bits: r.obs.iter().map(|v| v.to_bits()).collect(),
                        episode_returns: r.episode_returns,
                        episode_lens: r.episode_lens,
                        rng: r.rng.into(),
                    })
                    .collect()
            }),
        },
    )?;

    let (obs_space, act_space) = algo.spaces();
    let spec = algo.spec();
    let metadata = Metadata {
        format_version: FORMAT_VERSION,
        crate_version: env!("CARGO_PKG_VERSION").to_string(),
        algorithm: "PPO".to_string(),
        env: algo.config().env.clone(),
        experiment: experiment.map(str::to_string),
        observation_space: obs_space.to_string(),
        action_space: act_space.to_string(),
        module_spec: SpecJson {
            obs_dim: spec.obs_dim,
            num_actions: match spec.action {
                ActionSpec::Discrete(n) => n,
                ActionSpec::Box { .. } => 0,
            },
            action_dim: match spec.action {
                ActionSpec::Discrete(_) => 0,
                ActionSpec::Box { dim, .. } => dim,
            },
            fcnet_hiddens: spec.model.fcnet_hiddens.clone(),
            fcnet_activation: spec.model.fcnet_activation.name().to_string(),
            vf_share_layers: spec.model.vf_share_layers,
        },
        training_iteration: counters.iteration,
        num_env_steps_sampled_lifetime: counters.env_steps,
        num_episodes_lifetime: counters.episodes,
        time_total_s: counters.time_total_s,
        seed: algo.seed(),
        config: config_json(algo.config(), algo.seed()),
    };
    // metadata.json last: a folder without it is not a checkpoint.
    write_json(&tmp.join("metadata.json"), &metadata)
}

fn read_value(path: &Path) -> Result<Value, CheckpointError> {
    let bytes = fsio::read_bounded(path, MAX_JSON_BYTES).map_err(|m| cerr(path, m))?;
    serde_json::from_slice(&bytes).map_err(|e| cerr(path, format!("is not valid JSON: {e}")))
}

/// serde's words for a type, in the words of this project's other messages.
fn plain_serde_message(m: &str) -> String {
    if let Some(field) = m
        .strip_prefix("missing field `")
        .and_then(|r| r.split('`').next())
    {
        return format!("missing key '{field}'");
    }
    if let Some(field) = m
        .strip_prefix("unknown field `")
        .and_then(|r| r.split('`').next())
    {
        return format!("unknown key '{}'", crate::config::short(field));
    }
    m.replace("expected u64", "expected a whole number >= 0")
        .replace("expected u32", "expected a whole number below 2^32")
        .replace("expected usize", "expected a whole number >= 0")
        .replace("expected f64", "expected a number")
        .replace("expected a boolean", "expected true or false")
}

fn from_value<T: DeserializeOwned>(path: &Path, v: Value) -> Result<T, CheckpointError> {
    serde_path_to_error::deserialize(v).map_err(|e| {
        let field = e.path().to_string();
        let inner = plain_serde_message(&e.inner().to_string());
        if field == "." {
            cerr(path, inner)
        } else {
            cerr(path, format!("'{field}': {inner}"))
        }
    })
}

fn read_struct<T: DeserializeOwned>(path: &Path) -> Result<T, CheckpointError> {
    from_value(path, read_value(path)?)
}

/// The tensors of a safetensors file, one list per name prefix, and its metadata.
type TensorFile = (Vec<Vec<NamedTensor>>, HashMap<String, String>);

fn read_tensors(
    path: &Path,
    names: &[(String, Vec<usize>)],
    prefixes: &[&str],
) -> Result<TensorFile, CheckpointError> {
    // The file holds these tensors and a small header: anything much larger is not ours.
    let data = names
        .iter()
        .map(|(_, s)| s.iter().fold(4u64, |acc, &d| acc.saturating_mul(d as u64)))
        .fold(0u64, u64::saturating_add)
        .saturating_mul(prefixes.len() as u64);
    let bytes =
        fsio::read_bounded(path, data.saturating_add(1 << 20)).map_err(|m| cerr(path, m))?;
    let st = SafeTensors::deserialize(&bytes)
        .map_err(|e| cerr(path, format!("is not a valid safetensors file: {e}")))?;
    let meta = SafeTensors::read_metadata(&bytes)
        .map(|(_, m)| m.metadata().clone().unwrap_or_default())
        .unwrap_or_default();
    let mut out = Vec::new();
    for prefix in prefixes {
        let mut tensors = Vec::new();
        for (name, shape) in names {
            let key = format!("{prefix}{name}");
            let t = st
                .tensor(&key)
                .map_err(|_| cerr(path, format!("missing tensor '{key}'")))?;
            if t.dtype() != Dtype::F32 {
                return Err(cerr(
                    path,
                    format!("tensor '{key}' is {:?}, expected F32", t.dtype()),
                ));
            }
            if t.shape() != shape.as_slice() {
                return Err(cerr(
                    path,
                    format!(
                        "tensor '{key}' has shape {:?}, expected {shape:?} for this module",
                        t.shape()
                    ),
                ));
            }
            let data: Vec<f32> = t
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            if let Some(i) = data.iter().position(|v| !v.is_finite()) {
                return Err(cerr(
                    path,
                    format!(
                        "tensor '{key}' holds {} at index {i}; a checkpoint's weights and moments must be finite",
                        data[i]
                    ),
                ));
            }
            tensors.push(NamedTensor {
                name: name.clone(),
                shape: shape.clone(),
                data,
            });
        }
        out.push(tensors);
    }
    Ok((out, meta))
}

impl Checkpoint {
    /// Errors unless `env_id` is registered and has the spaces this checkpoint was trained on.
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
        let fits = match (&mut self.spec.action, env.action_space()) {
            (ActionSpec::Discrete(n), envs::Space::Discrete { n: m, .. }) => *n as u64 == *m,
            (
                ActionSpec::Box { dim, low, high },
                envs::Space::Box {
                    low: l, high: h, ..
                },
            ) => {
                *low = l.clone();
                *high = h.clone();
                *dim == l.len()
            }
            _ => false,
        };
        if self.spec.obs_dim != env.observation_space().flat_dim() || !fits {
            return Err(cerr(
                &self.path.join("metadata.json"),
                format!(
                    "'module_spec' (obs_dim {}, action head {}) does not fit {env_id}'s spaces {obs} / {act}",
                    self.spec.obs_dim,
                    self.spec.action.head_size()
                ),
            ));
        }
        Ok(())
    }
}

fn check_count(path: &Path, field: &str, v: u64) -> Result<u64, CheckpointError> {
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
    match meta_value.get("format_version").and_then(Value::as_u64) {
        Some(v) if v > FORMAT_VERSION => {
            return Err(cerr(
                &meta_path,
                format!(
                    "format_version {v} is newer than this build reads ({FORMAT_VERSION}); upgrade rllib (this is {})",
                    env!("CARGO_PKG_VERSION")
                ),
            ));
        }
        _ => {}
    }
    let meta: Metadata = from_value(&meta_path, meta_value)?;
    let s = &meta.module_spec;
    let action = match (s.num_actions, s.action_dim) {
        (n, 0) if n > 0 => ActionSpec::Discrete(n),
        (0, d) if d > 0 => ActionSpec::Box {
            dim: d,
            low: vec![f32::NEG_INFINITY; d],
            high: vec![f32::INFINITY; d],
        },
        (n, d) => {
            return Err(cerr(
                &meta_path,
                format!(
                    "'module_spec' has num_actions {n} and action_dim {d}; expected one of them (Discrete or Box actions) above 0"
                ),
            ));
        }
    };
    let spec = PpoModuleSpec {
        obs_dim: s.obs_dim,
        action,
        model: ModelConfig {
            fcnet_hiddens: s.fcnet_hiddens.clone(),
            fcnet_activation: Activation::parse(&s.fcnet_activation).ok_or_else(|| {
                cerr(
                    &meta_path,
                    format!(
                        "'module_spec.fcnet_activation': unknown activation '{}'",
                        crate::config::short(&s.fcnet_activation)
                    ),
                )
            })?,
            vf_share_layers: s.vf_share_layers,
            ..ModelConfig::default()
        },
    };
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

    let shapes = spec.parameter_shapes();
    let (mut tensors, _) = read_tensors(&dir.join(MODULE_PATH), &shapes, &[""])?;
    let opt_path = dir.join(OPTIMIZER_PATH);
    let (mut moments, meta_opt) = read_tensors(&opt_path, &shapes, &["exp_avg.", "exp_avg_sq."])?;
    let step = meta_opt
        .get("step")
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| {
            cerr(
                &opt_path,
                "missing or malformed 'step' in the safetensors metadata",
            )
        })?;
    check_count(&opt_path, "step", step)?;
    let exp_avg_sq = moments.pop().unwrap_or_default();
    let exp_avg = moments.pop().unwrap_or_default();
    if let Some(t) = exp_avg_sq.iter().find(|t| t.data.iter().any(|&v| v < 0.0)) {
        return Err(cerr(
            &opt_path,
            format!(
                "tensor 'exp_avg_sq.{}' holds a negative value; second moments are >= 0",
                t.name
            ),
        ));
    }

    let ls_path = dir.join(LEARNER_STATE_PATH);
    let ls: LearnerStateJson = read_struct(&ls_path)?;
    if !ls.kl_coeff.is_finite() || ls.kl_coeff < 0.0 {
        return Err(cerr(
            &ls_path,
            format!(
                "'kl_coeff' is {}; expected a finite number >= 0",
                crate::config::fmt_num(ls.kl_coeff)
            ),
        ));
    }

    let rs_path = dir.join(RUNNER_STATE_PATH);
    let rs: RunnerFileJson = read_struct(&rs_path)?;
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
            if f.mean.len() != spec.obs_dim || f.m2.len() != spec.obs_dim {
                return Err(cerr(
                    &rs_path,
                    format!(
                        "filter statistics have {} values, expected {}",
                        f.mean.len(),
                        spec.obs_dim
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
    if rs.episode_window.len() > SMOOTHING_EPISODES {
        return Err(cerr(
            &rs_path,
            format!(
                "'episode_window' holds {} episodes, at most {SMOOTHING_EPISODES} are kept",
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
                    || obs.len() != r.envs.len() * spec.obs_dim
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
                out.push(RunnerState {
                    envs: r.envs,
                    obs,
                    episode_returns: r.episode_returns,
                    episode_lens: r.episode_lens,
                    rng: (r.rng.state.0, r.rng.increment.0),
                });
            }
            Some(out)
        }
    };
    Ok(Checkpoint {
        path: dir.to_path_buf(),
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
        observation_space: meta.observation_space,
        action_space: meta.action_space,
        algorithm: meta.algorithm,
        env: meta.env,
        experiment: meta.experiment,
        seed: meta.seed,
        counters,
        config: meta.config,
        weights: Weights {
            tensors: tensors.pop().unwrap_or_default(),
        },
        optimizer: OptimizerState {
            step,
            exp_avg,
            exp_avg_sq,
        },
        kl_coeff: ls.kl_coeff,
        shuffle_rng: (ls.shuffle_rng.state.0, ls.shuffle_rng.increment.0),
        filter,
        spec,
    })
}
