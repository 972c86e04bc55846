//! Checkpoints in RLlib's folder layout, as JSON and safetensors (no pickle):
//!
//! ```text
//! checkpoint_000010/
//!   metadata.json                                         format, versions, algorithm, env, spaces, counters, config
//!   learner_group/learner/rl_module/default_policy/module_state.safetensors   weights (torch names and shapes)
//!   learner_group/learner/optimizer.safetensors           Adam moments (exp_avg.*, exp_avg_sq.*), step in metadata
//!   learner_group/learner/state.json                      KL coefficient, shuffling generator state
//!   env_runner/state.json                                 MeanStdFilter statistics
//! ```
//! A checkpoint is written into a temporary sibling folder and renamed into place, so a
//! crash never leaves a half-written checkpoint under a final name.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use algorithms::{
    Activation, MlpSpec, ModelConfig, NamedTensor, OptimizerState, RunningStat, Weights,
};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use serde_json::{Value, json};

use crate::algorithm::{Algorithm, Counters};
use crate::config::export::config_json;
use crate::env_runner::{EpisodeStat, RunnerState};

/// The format this build writes and reads.
pub const FORMAT_VERSION: u64 = 1;

const MODULE_PATH: &str = "learner_group/learner/rl_module/default_policy/module_state.safetensors";
const OPTIMIZER_PATH: &str = "learner_group/learner/optimizer.safetensors";
const LEARNER_STATE_PATH: &str = "learner_group/learner/state.json";
const RUNNER_STATE_PATH: &str = "env_runner/state.json";

/// A checkpoint that cannot be read, with the path and what is wrong.
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
    /// The env's observation space when the checkpoint was written.
    pub observation_space: String,
    /// The env's action space when the checkpoint was written.
    pub action_space: String,
    /// The network's shape.
    pub spec: MlpSpec,
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

fn spec_json(spec: &MlpSpec) -> Value {
    json!({
        "obs_dim": spec.obs_dim,
        "num_actions": spec.num_actions,
        "fcnet_hiddens": spec.model.fcnet_hiddens,
        "fcnet_activation": spec.model.fcnet_activation.name(),
        "vf_share_layers": spec.model.vf_share_layers,
    })
}

fn stat_json(s: &RunningStat) -> Value {
    json!({"count": s.count, "mean": s.mean, "m2": s.m2})
}

/// Writes a checkpoint of `algo` as `<trial_dir>/checkpoint_<iteration>` and returns its path.
pub fn save(algo: &Algorithm, trial_dir: &Path) -> Result<PathBuf, CheckpointError> {
    let counters = algo.counters();
    let name = format!("checkpoint_{:06}", counters.iteration);
    let final_dir = trial_dir.join(&name);
    let tmp = trial_dir.join(format!(".{name}.tmp-{}", std::process::id()));
    if tmp.exists() {
        fs::remove_dir_all(&tmp).map_err(|e| cerr(&tmp, e.to_string()))?;
    }
    let module_dir = tmp.join("learner_group/learner/rl_module/default_policy");
    fs::create_dir_all(&module_dir).map_err(|e| cerr(&module_dir, e.to_string()))?;
    fs::create_dir_all(tmp.join("env_runner")).map_err(|e| cerr(&tmp, e.to_string()))?;

    let learner = algo.learner();
    let weights = learner.weights().map_err(|e| cerr(&tmp, e.to_string()))?;
    let opt = learner
        .optimizer_state()
        .map_err(|e| cerr(&tmp, e.to_string()))?;
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
    let (rng_state, rng_inc) = learner.rng_state();
    let learner_state = json!({
        "kl_coeff": learner.kl_coeff(),
        "shuffle_rng": {"state": format!("{rng_state:#x}"), "increment": format!("{rng_inc:#x}")},
    });
    write_json(&tmp.join(LEARNER_STATE_PATH), &learner_state)?;
    let runners = algo
        .runner_states()
        .map_err(|e| cerr(&tmp, format!("env runner state: {e}")))?;
    let runner_state = json!({
        "filter": algo.filter().map(stat_json),
        "episode_window": algo.episode_window().iter().map(|e| json!([e.ret, e.len])).collect::<Vec<_>>(),
        "num_env_runner_restarts": algo.num_restarts(),
        "runners": runners.map(|rs| rs.iter().map(runner_json).collect::<Vec<_>>()),
    });
    write_json(&tmp.join(RUNNER_STATE_PATH), &runner_state)?;

    let (obs_space, act_space) = algo.spaces();
    let metadata = json!({
        "format_version": FORMAT_VERSION,
        "crate_version": env!("CARGO_PKG_VERSION"),
        "algorithm": "PPO",
        "env": algo.config().env,
        "observation_space": obs_space.to_string(),
        "action_space": act_space.to_string(),
        "module_spec": spec_json(algo.spec()),
        "training_iteration": counters.iteration,
        "num_env_steps_sampled_lifetime": counters.env_steps,
        "num_episodes_lifetime": counters.episodes,
        "time_total_s": counters.time_total_s,
        "seed": algo.seed(),
        "config": config_json(algo.config(), algo.seed()),
    });
    // metadata.json last: a folder without it is not a checkpoint.
    write_json(&tmp.join("metadata.json"), &metadata)?;
    if final_dir.exists() {
        fs::remove_dir_all(&final_dir).map_err(|e| cerr(&final_dir, e.to_string()))?;
    }
    fs::rename(&tmp, &final_dir).map_err(|e| cerr(&final_dir, e.to_string()))?;
    Ok(final_dir)
}

fn runner_json(r: &RunnerState) -> Value {
    json!({
        "envs": r.envs,
        "obs_bits": r.obs.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
        "episode_returns": r.episode_returns,
        "episode_lens": r.episode_lens,
        "rng": {"state": format!("{:#x}", r.rng.0), "increment": format!("{:#x}", r.rng.1)},
    })
}

fn parse_runner(v: &Value, path: &Path) -> Result<RunnerState, CheckpointError> {
    let words =
        |x: &Value| -> Option<Vec<u64>> { x.as_array()?.iter().map(Value::as_u64).collect() };
    let envs = field(v, path, "envs")?
        .as_array()
        .and_then(|a| a.iter().map(words).collect::<Option<Vec<_>>>())
        .ok_or_else(|| cerr(path, "'envs' must be lists of whole numbers"))?;
    let obs = words(field(v, path, "obs_bits")?)
        .and_then(|w| {
            w.into_iter()
                .map(|b| u32::try_from(b).ok().map(f32::from_bits))
                .collect::<Option<Vec<_>>>()
        })
        .ok_or_else(|| cerr(path, "'obs_bits' must be a list of 32-bit words"))?;
    let episode_lens = words(field(v, path, "episode_lens")?)
        .and_then(|w| {
            w.into_iter()
                .map(|b| u32::try_from(b).ok())
                .collect::<Option<Vec<_>>>()
        })
        .ok_or_else(|| cerr(path, "'episode_lens' must be a list of whole numbers"))?;
    let rng = field(v, path, "rng")?;
    Ok(RunnerState {
        envs,
        obs,
        episode_returns: f64_list(v, path, "episode_returns")?,
        episode_lens,
        rng: (
            hex_u128(rng, path, "state")?,
            hex_u128(rng, path, "increment")?,
        ),
    })
}

fn write_json(path: &Path, v: &Value) -> Result<(), CheckpointError> {
    let text = serde_json::to_string_pretty(v).map_err(|e| cerr(path, e.to_string()))?;
    fs::write(path, text + "\n").map_err(|e| cerr(path, e.to_string()))
}

fn read_json(path: &Path) -> Result<Value, CheckpointError> {
    let text = fs::read_to_string(path).map_err(|e| cerr(path, format!("cannot be read: {e}")))?;
    serde_json::from_str(&text).map_err(|e| cerr(path, format!("is not valid JSON: {e}")))
}

fn field<'a>(v: &'a Value, path: &Path, key: &str) -> Result<&'a Value, CheckpointError> {
    v.get(key)
        .ok_or_else(|| cerr(path, format!("missing key '{key}'")))
}

fn u64_field(v: &Value, path: &Path, key: &str) -> Result<u64, CheckpointError> {
    field(v, path, key)?
        .as_u64()
        .ok_or_else(|| cerr(path, format!("'{key}' must be a whole number")))
}

fn f64_field(v: &Value, path: &Path, key: &str) -> Result<f64, CheckpointError> {
    field(v, path, key)?
        .as_f64()
        .ok_or_else(|| cerr(path, format!("'{key}' must be a number")))
}

fn str_field<'a>(v: &'a Value, path: &Path, key: &str) -> Result<&'a str, CheckpointError> {
    field(v, path, key)?
        .as_str()
        .ok_or_else(|| cerr(path, format!("'{key}' must be a string")))
}

fn hex_u128(v: &Value, path: &Path, key: &str) -> Result<u128, CheckpointError> {
    str_field(v, path, key)?
        .strip_prefix("0x")
        .and_then(|h| u128::from_str_radix(h, 16).ok())
        .ok_or_else(|| {
            cerr(
                path,
                format!("'{key}' must be a hexadecimal string like \"0x1f\""),
            )
        })
}

fn f64_list(v: &Value, path: &Path, key: &str) -> Result<Vec<f64>, CheckpointError> {
    field(v, path, key)?
        .as_array()
        .and_then(|a| a.iter().map(Value::as_f64).collect::<Option<Vec<_>>>())
        .ok_or_else(|| cerr(path, format!("'{key}' must be a list of numbers")))
}

fn read_tensors(
    path: &Path,
    names: &[(String, Vec<usize>)],
    prefix: &str,
) -> Result<(Vec<NamedTensor>, HashMap<String, String>), CheckpointError> {
    let bytes = fs::read(path).map_err(|e| cerr(path, format!("cannot be read: {e}")))?;
    let st = SafeTensors::deserialize(&bytes)
        .map_err(|e| cerr(path, format!("is not a valid safetensors file: {e}")))?;
    let meta = SafeTensors::read_metadata(&bytes)
        .map(|(_, m)| m.metadata().clone().unwrap_or_default())
        .unwrap_or_default();
    let mut out = Vec::new();
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
        let data = t
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        out.push(NamedTensor {
            name: name.clone(),
            shape: shape.clone(),
            data,
        });
    }
    Ok((out, meta))
}

impl Checkpoint {
    /// Errors unless `env_id` is registered and has the spaces this checkpoint was trained on.
    pub fn check_env(&self, env_id: &str) -> Result<(), CheckpointError> {
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
        Ok(())
    }
}

/// Reads and checks a checkpoint folder.
pub fn load(dir: &Path) -> Result<Checkpoint, CheckpointError> {
    if !dir.is_dir() {
        let what = if dir.exists() {
            "is not a folder; expected a checkpoint folder (checkpoint_NNNNNN)"
        } else {
            "does not exist"
        };
        return Err(cerr(dir, what));
    }
    let meta_path = dir.join("metadata.json");
    if !meta_path.exists() {
        return Err(cerr(dir, "is not a checkpoint: it has no metadata.json"));
    }
    let meta = read_json(&meta_path)?;
    let version = u64_field(&meta, &meta_path, "format_version")?;
    if version > FORMAT_VERSION {
        return Err(cerr(
            &meta_path,
            format!(
                "format_version {version} is newer than this build reads ({FORMAT_VERSION}); upgrade rllib (this is {})",
                env!("CARGO_PKG_VERSION")
            ),
        ));
    }
    let algorithm = str_field(&meta, &meta_path, "algorithm")?.to_string();
    let env = str_field(&meta, &meta_path, "env")?.to_string();
    let s = field(&meta, &meta_path, "module_spec")?;
    let activation = str_field(s, &meta_path, "fcnet_activation")?;
    let spec = MlpSpec {
        obs_dim: u64_field(s, &meta_path, "obs_dim")? as usize,
        num_actions: u64_field(s, &meta_path, "num_actions")? as usize,
        model: ModelConfig {
            fcnet_hiddens: field(s, &meta_path, "fcnet_hiddens")?
                .as_array()
                .and_then(|a| {
                    a.iter()
                        .map(|x| x.as_u64().map(|n| n as usize))
                        .collect::<Option<Vec<_>>>()
                })
                .ok_or_else(|| {
                    cerr(
                        &meta_path,
                        "'fcnet_hiddens' must be a list of whole numbers",
                    )
                })?,
            fcnet_activation: Activation::parse(activation).ok_or_else(|| {
                cerr(
                    &meta_path,
                    format!("unknown fcnet_activation '{activation}'"),
                )
            })?,
            vf_share_layers: field(s, &meta_path, "vf_share_layers")?
                .as_bool()
                .ok_or_else(|| cerr(&meta_path, "'vf_share_layers' must be true or false"))?,
        },
    };
    let counters = Counters {
        iteration: u64_field(&meta, &meta_path, "training_iteration")?,
        env_steps: u64_field(&meta, &meta_path, "num_env_steps_sampled_lifetime")?,
        episodes: u64_field(&meta, &meta_path, "num_episodes_lifetime")?,
        time_total_s: f64_field(&meta, &meta_path, "time_total_s")?,
    };
    let shapes = spec.parameter_shapes();
    let (tensors, _) = read_tensors(&dir.join(MODULE_PATH), &shapes, "")?;
    let opt_path = dir.join(OPTIMIZER_PATH);
    let (exp_avg, meta_opt) = read_tensors(&opt_path, &shapes, "exp_avg.")?;
    let (exp_avg_sq, _) = read_tensors(&opt_path, &shapes, "exp_avg_sq.")?;
    let step = meta_opt
        .get("step")
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| {
            cerr(
                &opt_path,
                "missing or malformed 'step' in the safetensors metadata",
            )
        })?;
    let ls_path = dir.join(LEARNER_STATE_PATH);
    let ls = read_json(&ls_path)?;
    let rs_path = dir.join(RUNNER_STATE_PATH);
    let rs = read_json(&rs_path)?;
    let filter = match field(&rs, &rs_path, "filter")? {
        Value::Null => None,
        f => {
            let mean = f64_list(f, &rs_path, "mean")?;
            let m2 = f64_list(f, &rs_path, "m2")?;
            if mean.len() != spec.obs_dim || m2.len() != spec.obs_dim {
                return Err(cerr(
                    &rs_path,
                    format!(
                        "filter statistics have {} values, expected {}",
                        mean.len(),
                        spec.obs_dim
                    ),
                ));
            }
            Some(RunningStat {
                count: u64_field(f, &rs_path, "count")?,
                mean,
                m2,
            })
        }
    };
    let episode_window = match rs.get("episode_window") {
        None | Some(Value::Null) => Vec::new(),
        Some(w) => w
            .as_array()
            .and_then(|a| {
                a.iter()
                    .map(|e| {
                        Some(EpisodeStat {
                            ret: e.get(0)?.as_f64()?,
                            len: u32::try_from(e.get(1)?.as_u64()?).ok()?,
                        })
                    })
                    .collect::<Option<Vec<_>>>()
            })
            .ok_or_else(|| {
                cerr(
                    &rs_path,
                    "'episode_window' must be a list of [return, length] pairs",
                )
            })?,
    };
    let runners = match rs.get("runners") {
        None | Some(Value::Null) => None,
        Some(Value::Array(a)) => Some(
            a.iter()
                .map(|r| parse_runner(r, &rs_path))
                .collect::<Result<Vec<_>, _>>()?,
        ),
        Some(_) => return Err(cerr(&rs_path, "'runners' must be a list")),
    };
    Ok(Checkpoint {
        path: dir.to_path_buf(),
        episode_window,
        num_env_runner_restarts: rs
            .get("num_env_runner_restarts")
            .and_then(Value::as_u64)
            .unwrap_or(0),
        runners,
        observation_space: str_field(&meta, &meta_path, "observation_space")?.to_string(),
        action_space: str_field(&meta, &meta_path, "action_space")?.to_string(),
        algorithm,
        env,
        seed: u64_field(&meta, &meta_path, "seed")?,
        counters,
        config: field(&meta, &meta_path, "config")?.clone(),
        weights: Weights { tensors },
        optimizer: OptimizerState {
            step,
            exp_avg,
            exp_avg_sq,
        },
        kl_coeff: f64_field(&ls, &ls_path, "kl_coeff")?,
        shuffle_rng: {
            let rng = field(&ls, &ls_path, "shuffle_rng")?;
            (
                hex_u128(rng, &ls_path, "state")?,
                hex_u128(rng, &ls_path, "increment")?,
            )
        },
        filter,
        spec,
    })
}
