//! Env runners: fragments, bootstrapping and episode accounting across sample calls.

use algorithms::ppo::RewardFilter;
use algorithms::{
    ActionSpec, AlgorithmConfig, ModelConfig, ModuleSpec, ObservationFilter, PpoModuleSpec,
    ReturnStdFilter,
};
use rllib::env_runner::EnvRunner;

fn runner(num_envs: usize, filter: ObservationFilter) -> EnvRunner {
    runner_with(num_envs, filter, RewardFilter::NoFilter)
}

fn runner_with(num_envs: usize, filter: ObservationFilter, rewards: RewardFilter) -> EnvRunner {
    let mut cfg = AlgorithmConfig {
        num_envs_per_env_runner: num_envs,
        observation_filter: filter,
        ..Default::default()
    };
    cfg.ppo.reward_filter = rewards;
    let spec = PpoModuleSpec {
        obs_dim: 4,
        action: ActionSpec::Discrete(2),
        model: ModelConfig {
            fcnet_hiddens: vec![8],
            ..Default::default()
        },
    };
    let w = spec.init(3);
    EnvRunner::new(&cfg, &ModuleSpec::Ppo(spec), &w, 42, 1).unwrap()
}

#[test]
fn a_reward_filter_scales_the_learners_rewards_but_not_the_episode_returns() {
    let (n, steps) = (3, 60);
    let mut r = runner_with(
        n,
        ObservationFilter::NoFilter,
        RewardFilter::ReturnStdFilter,
    );
    let mut same = ReturnStdFilter::new(n, AlgorithmConfig::default().gamma);
    let mut want: Vec<Vec<f32>> = Vec::new();
    let mut episodes = Vec::new();
    for _ in 0..3 {
        let out = r.sample(steps);
        let b = &out.batch;
        // Each env's rows are contiguous: env i's step t is row i * steps + t.
        let mut done = vec![false; n * steps];
        for f in &b.fragments {
            if f.terminated || f.truncated {
                done[f.end - 1] = true;
            }
        }
        for t in 0..steps {
            // CartPole pays 1 per step in every env.
            let mut scaled = vec![0f32; n];
            same.apply(&vec![1.0; n], |i| done[i * steps + t], &mut scaled);
            for (i, s) in scaled.iter().enumerate() {
                assert_eq!(b.rewards[i * steps + t], *s, "env {i}, step {t}");
            }
            want.push(scaled);
        }
        episodes.extend(out.episodes);
    }
    assert!(!episodes.is_empty());
    for e in &episodes {
        assert_eq!(e.ret, f64::from(e.len), "episode returns stay the env's");
    }
    assert!(
        want.iter().flatten().any(|&v| (v - 1.0).abs() > 0.1),
        "scaled"
    );
    assert_eq!(r.state().unwrap().reward_filter.unwrap(), same);
}

#[test]
fn an_episode_spanning_sample_calls_is_counted_once_with_its_whole_return() {
    let mut r = runner(2, ObservationFilter::NoFilter);
    let mut episodes = Vec::new();
    let mut steps = 0;
    for _ in 0..100 {
        let out = r.sample(7);
        steps += out.batch.len();
        episodes.extend(out.episodes);
    }
    assert_eq!(steps, 100 * 7 * 2);
    assert!(
        episodes.iter().any(|e| e.len > 7),
        "some episode must span calls"
    );
    for e in &episodes {
        // CartPole pays 1 per step: the return is the whole episode's length.
        assert_eq!(e.ret, f64::from(e.len));
    }
    let finished: u32 = episodes.iter().map(|e| e.len).sum();
    assert!(finished as usize <= steps && steps - finished as usize <= 2 * 500);
}

#[test]
fn fragments_cover_every_row_and_bootstrap_unless_terminated() {
    let mut r = runner(3, ObservationFilter::MeanStdFilter);
    let out = r.sample(50);
    let b = &out.batch;
    assert_eq!(b.len(), 150);
    assert_eq!(b.obs.len(), 150 * 4);
    assert_eq!(b.action_dist_inputs.len(), 150 * 2);
    let mut covered = vec![0u8; b.len()];
    for f in &b.fragments {
        covered[f.start..f.end].iter_mut().for_each(|c| *c += 1);
        assert_eq!(f.terminated, f.bootstrap.is_none(), "{f:?}");
    }
    assert!(covered.iter().all(|&c| c == 1));
    let boots = b.fragments.iter().filter(|f| f.bootstrap.is_some()).count();
    assert_eq!(b.bootstrap_obs.len(), boots * 4);
    // Each env's last fragment is cut by the end of sampling (episodes here last < 50 steps
    // only sometimes), so at least the three running episodes bootstrap.
    assert!(boots >= 3);
    // The filter saw every stepped observation.
    assert_eq!(out.filter_delta.unwrap().count, 150);
}
