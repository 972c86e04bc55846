//! The JSON files of a checkpoint, as serde structs, and how each maps to and from the run's
//! state.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use algorithms::dqn::DqnModuleSpec;
use algorithms::ppo::ActionSpec;
use algorithms::sac::SacModuleSpec;
use algorithms::{Activation, Algo, ModelConfig, ModuleSpec, PpoModuleSpec};

/// A 128-bit generator word, written as a hexadecimal string ("0x1f").
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Hex(pub u128);

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

/// A generator's `(state, increment)`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RngJson {
    pub state: Hex,
    pub increment: Hex,
}

impl From<(u128, u128)> for RngJson {
    fn from((state, increment): (u128, u128)) -> Self {
        RngJson {
            state: Hex(state),
            increment: Hex(increment),
        }
    }
}

impl RngJson {
    pub fn pair(self) -> (u128, u128) {
        (self.state.0, self.increment.0)
    }
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// `metadata.json`'s `module_spec`: every algorithm's fields, absent where they do not apply.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct SpecJson {
    pub obs_dim: usize,
    /// Discrete actions (0 for a `Box`).
    #[serde(default)]
    pub num_actions: usize,
    /// Values per `Box` action (absent or 0 for `Discrete`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub action_dim: usize,
    pub fcnet_hiddens: Vec<usize>,
    pub fcnet_activation: String,
    #[serde(default)]
    pub vf_share_layers: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub head_fcnet_hiddens: Vec<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head_fcnet_activation: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dueling: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub twin_q: Option<bool>,
}

impl SpecJson {
    pub fn of(spec: &ModuleSpec) -> Self {
        let m = spec.model();
        let mut j = SpecJson {
            obs_dim: spec.obs_dim(),
            num_actions: 0,
            action_dim: 0,
            fcnet_hiddens: m.fcnet_hiddens.clone(),
            fcnet_activation: m.fcnet_activation.name().to_string(),
            vf_share_layers: m.vf_share_layers,
            head_fcnet_hiddens: Vec::new(),
            head_fcnet_activation: None,
            dueling: None,
            twin_q: None,
        };
        match spec {
            ModuleSpec::Ppo(s) | ModuleSpec::Bc(s) | ModuleSpec::Marwil(s) => match s.action {
                ActionSpec::Discrete(n) => j.num_actions = n,
                ActionSpec::Box { dim, .. } => j.action_dim = dim,
            },
            ModuleSpec::Dqn(s) => {
                j.num_actions = s.num_actions;
                j.head_fcnet_hiddens = m.head_fcnet_hiddens.clone();
                j.head_fcnet_activation = Some(m.head_fcnet_activation.name().to_string());
                j.dueling = Some(s.dueling);
            }
            ModuleSpec::Sac(s) => {
                j.action_dim = s.action_dim;
                j.twin_q = Some(s.twin_q);
            }
        }
        j
    }

    /// The module spec for `algo` (a `Box` action's bounds are infinite until the env's are
    /// filled in).
    pub fn spec(&self, algo: Algo) -> Result<ModuleSpec, String> {
        let activation = |s: &str, what: &str| {
            Activation::parse(s).ok_or_else(|| {
                format!(
                    "'module_spec.{what}': unknown activation '{}'",
                    crate::config::short(s)
                )
            })
        };
        let model = ModelConfig {
            fcnet_hiddens: self.fcnet_hiddens.clone(),
            fcnet_activation: activation(&self.fcnet_activation, "fcnet_activation")?,
            vf_share_layers: self.vf_share_layers,
            head_fcnet_hiddens: self.head_fcnet_hiddens.clone(),
            head_fcnet_activation: match &self.head_fcnet_activation {
                Some(a) => activation(a, "head_fcnet_activation")?,
                None => ModelConfig::default().head_fcnet_activation,
            },
        };
        let unbounded = |d: usize| (vec![f32::NEG_INFINITY; d], vec![f32::INFINITY; d]);
        let (n, d) = (self.num_actions, self.action_dim);
        let ppo_like = |action: ActionSpec, model: ModelConfig| {
            let s = PpoModuleSpec {
                obs_dim: self.obs_dim,
                action,
                model,
            };
            match algo {
                Algo::Bc => ModuleSpec::Bc(s),
                Algo::Marwil => ModuleSpec::Marwil(s),
                _ => ModuleSpec::Ppo(s),
            }
        };
        Ok(match (algo, n, d) {
            (Algo::Ppo | Algo::Bc | Algo::Marwil, n, 0) if n > 0 => {
                ppo_like(ActionSpec::Discrete(n), model)
            }
            (Algo::Ppo | Algo::Bc | Algo::Marwil, 0, d) if d > 0 => {
                let (low, high) = unbounded(d);
                ppo_like(ActionSpec::Box { dim: d, low, high }, model)
            }
            (Algo::Dqn, n, 0) if n > 0 => ModuleSpec::Dqn(DqnModuleSpec {
                obs_dim: self.obs_dim,
                num_actions: n,
                model,
                dueling: self.dueling.unwrap_or(true),
            }),
            (Algo::Sac, 0, d) if d > 0 => {
                let (low, high) = unbounded(d);
                ModuleSpec::Sac(SacModuleSpec {
                    obs_dim: self.obs_dim,
                    action_dim: d,
                    low,
                    high,
                    model,
                    twin_q: self.twin_q.unwrap_or(true),
                })
            }
            (algo, n, d) => {
                return Err(format!(
                    "'module_spec' has num_actions {n} and action_dim {d}, which {algo} cannot act with; expected one of them above 0"
                ));
            }
        })
    }
}

/// `metadata.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Metadata {
    pub format_version: u64,
    pub crate_version: String,
    pub algorithm: String,
    pub env: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub experiment: Option<String>,
    pub observation_space: String,
    pub action_space: String,
    pub module_spec: SpecJson,
    pub training_iteration: u64,
    pub num_env_steps_sampled_lifetime: u64,
    pub num_episodes_lifetime: u64,
    pub time_total_s: f64,
    pub seed: u64,
    pub config: Value,
}

/// `learner_group/learner/state.json`: what each algorithm's learner keeps besides weights
/// and optimizer moments.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct LearnerStateJson {
    /// PPO's adapted KL coefficient.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kl_coeff: Option<f64>,
    /// PPO's minibatch-shuffling generator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shuffle_rng: Option<RngJson>,
    /// SAC's noise generator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rng: Option<RngJson>,
    /// SAC's log α.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_alpha: Option<f32>,
    /// MARWIL's (and BC's) moving average of squared advantages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub moving_average_sqd_adv_norm: Option<f64>,
    /// DQN's and SAC's env steps at the last target update.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_target_update: Option<u64>,
    /// DQN's and SAC's target updates so far.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_target_updates: Option<u64>,
}

/// Running mean and variance statistics.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct StatJson {
    pub count: u64,
    pub mean: Vec<f64>,
    pub m2: Vec<f64>,
}

/// One env runner's state.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RunnerJson {
    pub envs: Vec<Vec<u64>>,
    pub obs_bits: Vec<u32>,
    pub episode_returns: Vec<f64>,
    pub episode_lens: Vec<u32>,
    pub rng: RngJson,
    #[serde(default)]
    pub steps: u64,
    /// What the runner's policy carries between steps (SAC's correlated noise), as f32 bits.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub policy_bits: Vec<u32>,
    /// The runner's reward filter (`reward_filter: ReturnStdFilter`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reward_filter: Option<RewardFilterJson>,
}

/// A runner's `ReturnStdFilter`: each env's discounted return and the statistics of returns.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RewardFilterJson {
    pub gamma: f64,
    pub returns: Vec<f64>,
    pub count: f64,
    pub mean: f64,
    pub var: f64,
}

/// `env_runner/state.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RunnerFileJson {
    pub filter: Option<StatJson>,
    #[serde(default)]
    pub episode_window: Vec<(f64, u32)>,
    #[serde(default)]
    pub num_env_runner_restarts: u64,
    #[serde(default)]
    pub runners: Option<Vec<RunnerJson>>,
}

/// `replay_buffer/state.json`: the buffer's scalars (its columns are in a safetensors file).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ReplayJson {
    pub obs_dim: usize,
    pub action_dim: usize,
    pub capacity: usize,
    pub next: usize,
    pub size: usize,
    pub max_priority: f64,
    pub open: Vec<(u64, u32)>,
    pub next_episode: u64,
    pub rng: RngJson,
}
