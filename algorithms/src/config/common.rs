//! The keys every algorithm shares (RLlib's `AlgorithmConfig` base: env runners, training,
//! learners, reporting, evaluation, fault tolerance) and the `model` section.

use super::key::{ConfigValue as V, KeyKind as K, KeySpec};
use super::{Activation, Algo, AlgorithmConfig, Device, LearnerBackendKind, ObservationFilter};
use crate::key;

const ACTIVATIONS: &[&str] = &["tanh", "relu", "linear"];
const ANY: f64 = f64::INFINITY;

fn activation(v: &V) -> Activation {
    Activation::parse(v.str()).unwrap_or(Activation::Tanh)
}

fn sizes(v: &V) -> Vec<usize> {
    v.items().iter().map(V::usize).collect()
}

fn from_sizes(s: &[usize]) -> V {
    V::List(s.iter().map(|&n| V::Int(n as u64)).collect())
}

/// The `model` section (RLlib's model config, fully-connected part).
pub static MODEL_KEYS: &[KeySpec<AlgorithmConfig>] = &[
    key!(
        "fcnet_hiddens",
        [],
        [],
        K::Sizes,
        false,
        "hidden layer sizes of the encoder",
        |c| from_sizes(&c.model.fcnet_hiddens),
        |c, v| c.model.fcnet_hiddens = sizes(v)
    ),
    key!(
        "fcnet_activation",
        [],
        [],
        K::Choice(ACTIVATIONS),
        false,
        "activation of the encoder's layers",
        |c| V::Str(c.model.fcnet_activation.name().into()),
        |c, v| c.model.fcnet_activation = activation(v)
    ),
    key!(
        "vf_share_layers",
        [],
        [Algo::Ppo, Algo::Bc, Algo::Marwil],
        K::Bool,
        false,
        "whether the value head shares the policy's encoder (else each has its own)",
        |c| V::Bool(c.model.vf_share_layers),
        |c, v| c.model.vf_share_layers = v.bool()
    ),
    key!(
        "head_fcnet_hiddens",
        [],
        [Algo::Dqn],
        K::Sizes,
        false,
        "hidden layers of each head (DQN's advantage and value streams) on the encoder",
        |c| from_sizes(&c.model.head_fcnet_hiddens),
        |c, v| c.model.head_fcnet_hiddens = sizes(v)
    ),
    key!(
        "head_fcnet_activation",
        [],
        [Algo::Dqn],
        K::Choice(ACTIVATIONS),
        false,
        "activation of the heads' hidden layers",
        |c| V::Str(c.model.head_fcnet_activation.name().into()),
        |c, v| c.model.head_fcnet_activation = activation(v)
    ),
];

/// Keys of every algorithm.
pub static COMMON_KEYS: &[KeySpec<AlgorithmConfig>] = &[
    key!(
        "env",
        [],
        [],
        K::Env,
        false,
        "the env id",
        |c| V::Str(c.env.clone()),
        |c, v| c.env = v.str().to_string()
    ),
    key!(
        "num_env_runners",
        ["num_workers", "num_rollout_workers"],
        [],
        K::Count {
            min: 0,
            max: u64::MAX
        },
        true,
        "env-runner actors; 0 samples in the driver",
        |c| V::Int(c.num_env_runners as u64),
        |c, v| c.num_env_runners = v.usize()
    ),
    key!(
        "num_envs_per_env_runner",
        ["num_envs_per_worker"],
        [],
        K::Count {
            min: 1,
            max: u64::MAX
        },
        true,
        "envs in each runner's vector env",
        |c| V::Int(c.num_envs_per_env_runner as u64),
        |c, v| c.num_envs_per_env_runner = v.usize()
    ),
    key!(
        "num_cpus_per_env_runner",
        ["num_cpus_per_worker"],
        [],
        K::Float {
            min: 1e-4,
            max: 1e6,
            min_inclusive: true
        },
        true,
        "CPUs each env runner holds; fractions share a CPU",
        |c| V::Float(c.num_cpus_per_env_runner),
        |c, v| c.num_cpus_per_env_runner = v.f64()
    ),
    key!(
        "rollout_fragment_length",
        [],
        [],
        K::CountOrAuto { min: 1 },
        true,
        "steps per env per sample call (auto: PPO's batch over all envs, DQN/SAC's n-step)",
        |c| V::from_count_or_auto(c.rollout_fragment_length),
        |c, v| c.rollout_fragment_length = (!v.is_unset()).then(|| v.usize())
    ),
    key!(
        "observation_filter",
        [],
        [],
        K::Choice(&["MeanStdFilter", "NoFilter"]),
        false,
        "observation preprocessing (running mean/std, synchronised every iteration)",
        |c| V::Str(c.observation_filter.name().into()),
        |c, v| c.observation_filter = if v.str() == "MeanStdFilter" {
            ObservationFilter::MeanStdFilter
        } else {
            ObservationFilter::NoFilter
        }
    ),
    key!(
        "normalize_actions",
        [],
        [],
        K::Bool,
        true,
        "Box actions are produced in [-1, 1] and mapped onto the env's bounds",
        |c| V::Bool(c.normalize_actions),
        |c, v| c.normalize_actions = v.bool()
    ),
    key!(
        "clip_actions",
        [],
        [],
        K::Bool,
        true,
        "Box actions are clipped to the env's bounds (when not normalised)",
        |c| V::Bool(c.clip_actions),
        |c, v| c.clip_actions = v.bool()
    ),
    key!(
        "train_batch_size",
        ["train_batch_size_per_learner"],
        [],
        K::Count {
            min: 1,
            max: u64::MAX
        },
        true,
        "PPO: env steps per iteration; DQN/SAC: rows per gradient step",
        |c| V::Int(c.train_batch_size as u64),
        |c, v| c.train_batch_size = v.usize()
    ),
    key!(
        "lr",
        [],
        [Algo::Ppo, Algo::Dqn, Algo::Bc, Algo::Marwil],
        K::Float {
            min: 0.0,
            max: ANY,
            min_inclusive: false
        },
        true,
        "learning rate",
        |c| V::Float(c.lr),
        |c, v| c.lr = v.f64()
    ),
    key!(
        "lr_schedule",
        [],
        [Algo::Ppo, Algo::Dqn, Algo::Bc, Algo::Marwil],
        K::Schedule,
        true,
        "piecewise-linear learning rate over sampled env steps",
        |c| V::from_schedule(&c.lr_schedule),
        |c, v| c.lr_schedule = v.schedule()
    ),
    key!(
        "gamma",
        [],
        [],
        K::Float {
            min: 0.0,
            max: 1.0,
            min_inclusive: true
        },
        true,
        "discount factor",
        |c| V::Float(c.gamma),
        |c, v| c.gamma = v.f64()
    ),
    key!(
        "grad_clip",
        [],
        [],
        K::FloatOrNull {
            min: 0.0,
            max: ANY,
            min_inclusive: false
        },
        true,
        "global gradient-norm clip; null: none",
        |c| V::from_option(c.grad_clip),
        |c, v| c.grad_clip = (!v.is_unset()).then(|| v.f64())
    ),
    key!(section "model", [], [], false, "the network", MODEL_KEYS),
    key!(
        "seed",
        [],
        [],
        K::Seed,
        true,
        "seed of everything random; null: drawn from the OS",
        |c| c.seed.map_or(V::Null, V::Int),
        |c, v| c.seed = (!v.is_unset()).then(|| v.u64())
    ),
    key!(
        "num_gpus_per_learner",
        ["num_gpus"],
        [],
        K::Float {
            min: 0.0,
            max: 1.0,
            min_inclusive: true
        },
        true,
        "GPUs of the learner (above 0: CUDA, needs --features cuda)",
        |c| V::Int(u64::from(c.device == Device::Cuda)),
        |c, v| c.device = if v.f64() > 0.0 {
            Device::Cuda
        } else {
            Device::Cpu
        }
    ),
    key!(
        "num_cpus_per_learner",
        [],
        [],
        K::CountOrAuto { min: 1 },
        true,
        "threads of the fused learner (auto: the CPUs, at most 8); results do not depend on it",
        |c| V::from_count_or_auto(c.num_cpus_per_learner),
        |c, v| c.num_cpus_per_learner = (!v.is_unset()).then(|| v.usize())
    ),
    key!(
        "learner_backend",
        [],
        [],
        K::Choice(&["auto", "fused", "candle"]),
        true,
        "the learner's implementation (auto: fused on the CPU, candle on CUDA)",
        |c| V::Str(c.learner_backend.name().into()),
        |c, v| c.learner_backend = match v.str() {
            "fused" => LearnerBackendKind::Fused,
            "candle" => LearnerBackendKind::Candle,
            _ => LearnerBackendKind::Auto,
        }
    ),
    key!(
        "metrics_num_episodes_for_smoothing",
        [],
        [],
        K::Count {
            min: 1,
            max: u64::MAX
        },
        true,
        "episodes episode_return_mean averages over",
        |c| V::Int(c.metrics_num_episodes_for_smoothing as u64),
        |c, v| c.metrics_num_episodes_for_smoothing = v.usize()
    ),
    key!(
        "min_sample_timesteps_per_iteration",
        [],
        [],
        K::Count {
            min: 0,
            max: u64::MAX
        },
        true,
        "env steps an iteration samples at least (DQN/SAC repeat their training step)",
        |c| V::Int(c.min_sample_timesteps_per_iteration as u64),
        |c, v| c.min_sample_timesteps_per_iteration = v.usize()
    ),
    key!(
        "evaluation_interval",
        [],
        [],
        K::CountOrNull { min: 0 },
        true,
        "evaluate every this many iterations; 0 or null: never",
        |c| c.evaluation_interval.map_or(V::Null, |n| V::Int(n as u64)),
        |c, v| c.evaluation_interval = (!v.is_unset() && v.u64() > 0).then(|| v.usize())
    ),
    key!(
        "evaluation_duration",
        [],
        [],
        K::Count {
            min: 1,
            max: u64::MAX
        },
        true,
        "episodes per evaluation",
        |c| V::Int(c.evaluation_duration as u64),
        |c, v| c.evaluation_duration = v.usize()
    ),
    key!(
        "input",
        ["input_"],
        [Algo::Bc, Algo::Marwil],
        K::PathOrNull,
        true,
        "recorded episodes to learn from: a folder, Parquet file or * pattern (sampler: none)",
        |c| c.input.clone().map_or(V::Null, V::Str),
        |c, v| c.input =
            (!matches!(v, V::Null) && v.str() != "sampler").then(|| v.str().to_string())
    ),
    key!(
        "output",
        [],
        [],
        K::PathOrNull,
        true,
        "a folder the env runners write every finished episode into, as Parquet",
        |c| c.output.clone().map_or(V::Null, V::Str),
        |c, v| c.output = (!matches!(v, V::Null)).then(|| v.str().to_string())
    ),
    key!(
        "restart_failed_env_runners",
        ["recreate_failed_env_runners", "recreate_failed_workers"],
        [],
        K::Bool,
        true,
        "replace a failed env runner and go on without its samples",
        |c| V::Bool(c.restart_failed_env_runners),
        |c, v| c.restart_failed_env_runners = v.bool()
    ),
    key!(
        "max_num_env_runner_restarts",
        ["max_num_worker_restarts"],
        [],
        K::Count {
            min: 0,
            max: u64::MAX
        },
        true,
        "replacements a run allows in total",
        |c| V::Int(c.max_num_env_runner_restarts as u64),
        |c, v| c.max_num_env_runner_restarts = v.usize()
    ),
    key!(
        "framework",
        [],
        [],
        K::Ignored,
        true,
        "accepted and ignored: the learner is this project's own",
        |_c| V::Null,
        |_c, _v| {}
    ),
    key!(
        "enable_connectors",
        [],
        [],
        K::Ignored,
        true,
        "accepted and ignored",
        |_c| V::Null,
        |_c, _v| {}
    ),
    key!(
        "enable_rl_module_and_learner",
        [],
        [],
        K::Ignored,
        true,
        "accepted and ignored",
        |_c| V::Null,
        |_c, _v| {}
    ),
    key!(
        "enable_env_runner_and_connector_v2",
        [],
        [],
        K::Ignored,
        true,
        "accepted and ignored",
        |_c| V::Null,
        |_c, _v| {}
    ),
    key!(
        "log_level",
        [],
        [],
        K::Ignored,
        true,
        "accepted and ignored",
        |_c| V::Null,
        |_c, _v| {}
    ),
];
