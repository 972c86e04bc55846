//! Running a policy for whole episodes: `rllib evaluate` and in-training evaluation.

use algorithms::policy::Actions;
use algorithms::{AlgorithmConfig, MeanStdFilter, ModuleSpec, RunningStat, Weights};
use envs::{Action, NpRandom, RgbFrame};

use crate::offline::EpisodeRecorder;

/// Returns and lengths over evaluation episodes, accumulated as they finish (so that any
/// number of episodes takes constant memory).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EvalStats {
    /// Episodes run.
    pub episodes: u64,
    /// Sum of their returns.
    pub return_sum: f64,
    /// Lowest return.
    pub return_min: f64,
    /// Highest return.
    pub return_max: f64,
    /// Sum of their lengths.
    pub len_sum: u64,
    /// Shortest episode.
    pub len_min: u64,
    /// Longest episode.
    pub len_max: u64,
}

impl Default for EvalStats {
    fn default() -> Self {
        EvalStats {
            episodes: 0,
            return_sum: 0.0,
            return_min: f64::INFINITY,
            return_max: f64::NEG_INFINITY,
            len_sum: 0,
            len_min: u64::MAX,
            len_max: 0,
        }
    }
}

impl EvalStats {
    fn add(&mut self, ret: f64, len: u64) {
        self.episodes += 1;
        self.return_sum += ret;
        self.return_min = self.return_min.min(ret);
        self.return_max = self.return_max.max(ret);
        self.len_sum += len;
        self.len_min = self.len_min.min(len);
        self.len_max = self.len_max.max(len);
    }

    /// Mean return (NaN before any episode).
    pub fn return_mean(&self) -> f64 {
        self.return_sum / self.episodes as f64
    }

    /// Mean length (NaN before any episode).
    pub fn len_mean(&self) -> f64 {
        self.len_sum as f64 / self.episodes as f64
    }
}

/// Where rendered frames go, one at a time (a GIF writer).
pub type FrameSink<'a> = dyn FnMut(&RgbFrame) -> Result<(), String> + 'a;

/// Runs `episodes` episodes of `cfg.env` one after another; episode `i` starts from
/// `reset(seed + i)`. Greedy (the most likely action, the largest Q, a Gaussian's mean) unless
/// `explore`. The filter, when given, is frozen. With `frames`, the first episode is rendered
/// into it, one frame per state as it happens. With `recorder`, every episode is recorded
/// (its raw observations, as `output` records them).
#[allow(clippy::too_many_arguments)]
pub fn evaluate_episodes(
    cfg: &AlgorithmConfig,
    spec: &ModuleSpec,
    weights: &Weights,
    filter: Option<&RunningStat>,
    episodes: usize,
    seed: u64,
    explore: bool,
    mut frames: Option<&mut FrameSink<'_>>,
    mut recorder: Option<&mut EpisodeRecorder>,
) -> Result<EvalStats, String> {
    let env_id = cfg.env.as_str();
    let mut env = envs::make(env_id).map_err(|e| e.to_string())?;
    let mut policy = spec.policy(&spec.inference_part(weights)?, cfg)?;
    let d = env.observation_space().flat_dim();
    let mut filter = filter.map(|s| {
        let mut f = MeanStdFilter::new(d);
        f.sync(s);
        f
    });
    let mut rng = NpRandom::from_seed(seed ^ 0xe7a1);
    let mut raw = vec![0.0f32; d];
    let mut obs = vec![0.0f32; d];
    let mut actions = Actions::default();
    let mut out = EvalStats::default();
    for i in 0..episodes {
        env.reset_into(Some(seed.wrapping_add(i as u64)), &mut raw);
        let (mut ret, mut len) = (0.0f64, 0u64);
        let mut record = |env: &dyn envs::Env| -> Result<(), String> {
            if let (0, Some(sink)) = (i, frames.as_deref_mut()) {
                sink(
                    &env.render()
                        .ok_or_else(|| format!("{env_id} cannot render"))?,
                )?;
            }
            Ok(())
        };
        record(env.as_ref())?;
        loop {
            match filter.as_mut() {
                Some(f) => f.apply(&raw, false, &mut obs),
                None => obs.copy_from_slice(&raw),
            }
            if explore {
                policy.explore(&obs, 1, u64::MAX / 2, &mut rng, &mut actions);
            } else {
                policy.greedy(&obs, 1, &mut actions);
            }
            let logp = if explore { actions.logp[0] } else { 0.0 };
            let before = recorder.is_some().then(|| raw.clone());
            let t = if policy.discrete() {
                env.step_into(Action::Discrete(actions.env_discrete[0]), &mut raw)
            } else {
                env.step_into(Action::Continuous(&actions.env_continuous), &mut raw)
            };
            if let (Some(rec), Some(obs)) = (recorder.as_deref_mut(), &before) {
                rec.step(
                    0,
                    obs,
                    &actions.actions,
                    logp,
                    t.reward as f32,
                    t.terminated,
                    t.truncated,
                );
            }
            ret += t.reward;
            len += 1;
            record(env.as_ref())?;
            if t.terminated || t.truncated {
                break;
            }
        }
        out.add(ret, len);
    }
    Ok(out)
}
