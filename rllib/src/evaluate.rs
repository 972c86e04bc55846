//! Running a policy for whole episodes: `rllib evaluate` and in-training evaluation.

use algorithms::module::{argmax, sample_categorical};
use algorithms::{MeanStdFilter, MlpPolicy, MlpSpec, RunningStat, Weights};
use envs::{Action, NpRandom, RgbFrame};

use crate::env_runner::EpisodeStat;

/// Runs `episodes` episodes of `env_id` one after another; episode `i` starts from
/// `reset(seed + i)`. Greedy (argmax) unless `explore`. The filter, when given, is frozen.
/// With `frames`, the first episode is rendered into it, one frame per state.
#[allow(clippy::too_many_arguments)]
pub fn evaluate_episodes(
    env_id: &str,
    spec: MlpSpec,
    weights: &Weights,
    filter: Option<&RunningStat>,
    episodes: usize,
    seed: u64,
    explore: bool,
    mut frames: Option<&mut Vec<RgbFrame>>,
) -> Result<Vec<EpisodeStat>, String> {
    let mut env = envs::make(env_id).map_err(|e| e.to_string())?;
    let mut policy = MlpPolicy::new(spec, weights)?;
    let d = env.observation_space().flat_dim();
    let mut filter = filter.map(|s| {
        let mut f = MeanStdFilter::new(d);
        f.sync(s);
        f
    });
    let mut rng = NpRandom::from_seed(seed ^ 0xe7a1);
    let mut raw = vec![0.0f32; d];
    let mut obs = vec![0.0f32; d];
    let mut logits = vec![0.0f32; policy.spec().num_actions];
    let mut out = Vec::with_capacity(episodes);
    for i in 0..episodes {
        env.reset_into(Some(seed.wrapping_add(i as u64)), &mut raw);
        let mut stat = EpisodeStat { ret: 0.0, len: 0 };
        let mut record = |env: &dyn envs::Env| -> Result<(), String> {
            if let (0, Some(frames)) = (i, frames.as_deref_mut()) {
                frames.push(
                    env.render()
                        .ok_or_else(|| format!("{env_id} cannot render"))?,
                );
            }
            Ok(())
        };
        record(env.as_ref())?;
        loop {
            match filter.as_mut() {
                Some(f) => f.apply(&raw, false, &mut obs),
                None => obs.copy_from_slice(&raw),
            }
            policy.forward_inference(&obs, 1, &mut logits);
            let a = if explore {
                sample_categorical(&logits, &mut rng).0
            } else {
                argmax(&logits)
            };
            let t = env.step_into(Action::Discrete(i64::from(a)), &mut raw);
            stat.ret += t.reward;
            stat.len += 1;
            record(env.as_ref())?;
            if t.terminated || t.truncated {
                break;
            }
        }
        out.push(stat);
    }
    Ok(out)
}
