//! `EnvRunner`: a vector of envs and a copy of the policy; returns one `SampleBatch` per call.
//!
//! Inference is batched over the runner's envs, once per vector step, with no allocation in
//! the step loop. Observations pass through the runner's `MeanStdFilter` (when configured);
//! its statistics since the last synchronisation travel back with the batch. With PPO's
//! `reward_filter: ReturnStdFilter` the batch's rewards are scaled by the runner's own
//! [`ReturnStdFilter`], whose statistics are part of the runner's state.

use crate::offline::EpisodeRecorder;
use algorithms::policy::{Actions, Policy};
use algorithms::ppo::RewardFilter;
use algorithms::{
    AlgorithmConfig, Fragment, MeanStdFilter, ModuleSpec, ObservationFilter, ReturnStdFilter,
    RunningStat, SampleBatch, Weights,
};
use envs::{ActionBatch, Env, NpRandom, VectorEnv};

/// A finished episode's return and length.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EpisodeStat {
    /// Sum of rewards.
    pub ret: f64,
    /// Steps.
    pub len: u32,
}

/// What one `sample` call returns.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct SampleOutput {
    /// The experience.
    pub batch: SampleBatch,
    /// Filter statistics gathered since the last synchronisation.
    pub filter_delta: Option<RunningStat>,
    /// Episodes that ended during the call, whole (also those begun in an earlier call).
    pub episodes: Vec<EpisodeStat>,
}

/// Everything a runner needs to resume exactly: its envs, current observations, episodes in
/// progress and its action generator.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RunnerState {
    /// Each env's saved state.
    pub envs: Vec<Vec<u64>>,
    /// The current raw observations, `num_envs × obs_dim`.
    pub obs: Vec<f32>,
    /// Return so far of each env's running episode.
    pub episode_returns: Vec<f64>,
    /// Length so far of each env's running episode.
    pub episode_lens: Vec<u32>,
    /// The action generator's `(state, increment)`.
    pub rng: (u128, u128),
    /// Env steps the runner sampled over the run.
    pub steps: u64,
    /// What the policy carries from step to step (SAC's correlated noise).
    pub policy: Vec<f32>,
    /// The reward filter's returns and statistics (`reward_filter: ReturnStdFilter`).
    #[serde(default)]
    pub reward_filter: Option<ReturnStdFilter>,
}

/// Seeds of runner `worker_index`'s envs and action sampling, derived from the run's seed.
pub fn runner_seeds(seed: u64, worker_index: usize) -> (u64, u64) {
    let env_seed = seed.wrapping_add(1000 * worker_index as u64);
    let action_seed = seed ^ 0x9e37_79b9_7f4a_7c15u64.wrapping_mul(worker_index as u64 + 1);
    (env_seed, action_seed)
}

/// Per-env rows of the batch being built.
#[derive(Default)]
struct EnvRows {
    obs: Vec<f32>,
    actions: Vec<f32>,
    rewards: Vec<f32>,
    logp: Vec<f32>,
    dist_inputs: Vec<f32>,
    /// Unfiltered observations (kept only when recording with a filter).
    raw_obs: Vec<f32>,
    /// The env's rewards (kept only when recording with a reward filter).
    raw_rewards: Vec<f32>,
    /// Episode pieces, in this env's local rows.
    pieces: Vec<Fragment>,
    piece_start: usize,
    /// The episode step of `piece_start`.
    piece_first_step: u32,
}

impl EnvRows {
    fn clear(&mut self, first_step: u32) {
        self.obs.clear();
        self.actions.clear();
        self.rewards.clear();
        self.logp.clear();
        self.dist_inputs.clear();
        self.raw_obs.clear();
        self.raw_rewards.clear();
        self.pieces.clear();
        self.piece_start = 0;
        self.piece_first_step = first_step;
    }
}

/// An env runner (RLlib's `SingleAgentEnvRunner`).
pub struct EnvRunner {
    venv: VectorEnv<Box<dyn Env>>,
    policy: Box<dyn Policy>,
    filter: Option<MeanStdFilter>,
    reward_filter: Option<ReturnStdFilter>,
    /// One vector step's rewards as the reward filter scaled them.
    step_rewards: Vec<f32>,
    rng: NpRandom,
    obs_dim: usize,
    action_dim: usize,
    dist_width: usize,
    discrete: bool,
    filtered: Vec<f32>,
    out: Actions,
    scratch: Vec<f32>,
    ep_return: Vec<f64>,
    ep_len: Vec<u32>,
    rows: Vec<EnvRows>,
    boot: Vec<f32>,
    /// Env steps this runner sampled over the run.
    steps: u64,
    /// Scales the runner's own steps to the run's (RLlib's `max(num_env_runners, 1)`), for
    /// schedules such as DQN's ε.
    step_scale: u64,
    /// Writes every finished episode to `output`, when set.
    recorder: Option<EpisodeRecorder>,
}

impl std::fmt::Debug for EnvRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnvRunner")
            .field("num_envs", &self.venv.num_envs())
            .finish()
    }
}

impl EnvRunner {
    /// A runner for `cfg.env` with `cfg.num_envs_per_env_runner` envs, acting with the
    /// module's `weights`, seeded for its index.
    pub fn new(
        cfg: &AlgorithmConfig,
        spec: &ModuleSpec,
        weights: &Weights,
        seed: u64,
        worker_index: usize,
    ) -> Result<Self, String> {
        let mut venv =
            envs::make_vec(&cfg.env, cfg.num_envs_per_env_runner).map_err(|e| e.to_string())?;
        let (env_seed, action_seed) = runner_seeds(seed, worker_index);
        venv.reset(Some(env_seed));
        let n = venv.num_envs();
        let obs_dim = spec.obs_dim();
        let filter = match cfg.observation_filter {
            ObservationFilter::MeanStdFilter => Some(MeanStdFilter::new(obs_dim)),
            ObservationFilter::NoFilter => None,
        };
        let reward_filter = match cfg.ppo.reward_filter {
            RewardFilter::ReturnStdFilter => Some(ReturnStdFilter::new(n, cfg.gamma)),
            RewardFilter::NoFilter => None,
        };
        let policy = spec.policy(&spec.inference_part(weights)?, cfg)?;
        let recorder = match &cfg.output {
            Some(dir) => Some(EpisodeRecorder::new(
                std::path::Path::new(dir),
                worker_index,
                n,
                obs_dim,
                policy.action_dim(),
                policy.discrete(),
            )?),
            None => None,
        };
        Ok(EnvRunner {
            recorder,
            action_dim: policy.action_dim(),
            dist_width: policy.dist_width(),
            discrete: policy.discrete(),
            policy,
            filter,
            reward_filter,
            step_rewards: vec![0.0; n],
            rng: NpRandom::from_seed(action_seed),
            obs_dim,
            filtered: vec![0.0; n * obs_dim],
            out: Actions::default(),
            scratch: vec![0.0; obs_dim],
            ep_return: vec![0.0; n],
            ep_len: vec![0; n],
            rows: (0..n).map(|_| EnvRows::default()).collect(),
            boot: Vec::new(),
            steps: 0,
            step_scale: cfg.num_env_runners.max(1) as u64,
            venv,
        })
    }

    /// Writes the episodes recorded for `output` that are not yet in a file, and stops
    /// recording (an episode still running is not written); the first write error, if any.
    pub fn finish_output(&mut self) -> Result<(), String> {
        match self.recorder.take() {
            Some(mut r) => r.finish(),
            None => Ok(()),
        }
    }

    /// Envs in this runner's vector env.
    pub fn num_envs(&self) -> usize {
        self.venv.num_envs()
    }

    /// Adopts new (inference) weights and the driver's synchronised filter statistics.
    pub fn sync(&mut self, weights: &Weights, filter: Option<&RunningStat>) -> Result<(), String> {
        self.policy.set_weights(weights)?;
        self.sync_filter(filter);
        Ok(())
    }

    /// Takes the central `MeanStdFilter` statistics (weights unchanged).
    pub fn sync_filter(&mut self, filter: Option<&RunningStat>) {
        if let (Some(f), Some(central)) = (self.filter.as_mut(), filter) {
            f.sync(central);
        }
    }

    /// The runner's state, if its envs can save theirs.
    pub fn state(&self) -> Option<RunnerState> {
        let (envs, obs) = self.venv.save_state()?;
        Some(RunnerState {
            envs,
            obs,
            episode_returns: self.ep_return.clone(),
            episode_lens: self.ep_len.clone(),
            rng: self.rng.to_state(),
            steps: self.steps,
            policy: self.policy.state(),
            reward_filter: self.reward_filter.clone(),
        })
    }

    /// Resumes a saved state; errors when it does not fit this runner.
    pub fn set_state(&mut self, s: &RunnerState) -> Result<(), String> {
        let n = self.venv.num_envs();
        if s.episode_returns.len() != n || s.episode_lens.len() != n {
            return Err(format!(
                "a runner state for {} envs does not fit {n} envs",
                s.episode_returns.len()
            ));
        }
        self.venv.load_state(&s.envs, &s.obs)?;
        self.policy.set_state(&s.policy)?;
        self.ep_return.copy_from_slice(&s.episode_returns);
        self.ep_len.copy_from_slice(&s.episode_lens);
        self.rng = NpRandom::from_state(s.rng.0, s.rng.1);
        self.steps = s.steps;
        // A state saved without the filter (turned on at the restore) leaves it fresh.
        if let (Some(f), Some(saved)) = (self.reward_filter.as_mut(), &s.reward_filter) {
            if saved.returns.len() != n {
                return Err(format!(
                    "a reward filter for {} envs does not fit {n} envs",
                    saved.returns.len()
                ));
            }
            *f = saved.clone();
        }
        Ok(())
    }

    fn filter_into(filter: &mut Option<MeanStdFilter>, raw: &[f32], update: bool, out: &mut [f32]) {
        match filter {
            Some(f) => f.apply(raw, update, out),
            None => out.copy_from_slice(raw),
        }
    }

    /// Steps every env `steps_per_env` times with exploration and returns the experience.
    pub fn sample(&mut self, steps_per_env: usize) -> SampleOutput {
        let n = self.venv.num_envs();
        let d = self.obs_dim;
        let (ad, w) = (self.action_dim, self.dist_width);
        // The staging buffers keep their capacity from call to call.
        for (r, &len) in self.rows.iter_mut().zip(&self.ep_len) {
            r.clear(len);
            r.obs.reserve(steps_per_env * d);
            r.dist_inputs.reserve(steps_per_env * w);
            r.actions.reserve(steps_per_env * ad);
        }
        self.boot.clear();
        let mut episodes = Vec::new();
        for _ in 0..steps_per_env {
            for (raw, out) in self
                .venv
                .obs()
                .chunks_exact(d)
                .zip(self.filtered.chunks_exact_mut(d))
            {
                Self::filter_into(&mut self.filter, raw, true, out);
            }
            let t = self.steps * self.step_scale;
            self.policy
                .explore(&self.filtered, n, t, &mut self.rng, &mut self.out);
            if self.recorder.is_some() && self.filter.is_some() {
                for (r, raw) in self.rows.iter_mut().zip(self.venv.obs().chunks_exact(d)) {
                    r.raw_obs.extend_from_slice(raw);
                }
            }
            for (i, r) in self.rows.iter_mut().enumerate() {
                r.obs.extend_from_slice(&self.filtered[i * d..][..d]);
                r.actions
                    .extend_from_slice(&self.out.actions[i * ad..][..ad]);
                r.dist_inputs
                    .extend_from_slice(&self.out.dist_inputs[i * w..][..w]);
                r.logp.push(self.out.logp[i]);
            }
            if self.discrete {
                self.venv
                    .step(ActionBatch::Discrete(&self.out.env_discrete));
            } else {
                self.venv
                    .step(ActionBatch::Continuous(&self.out.env_continuous));
            }
            self.steps += n as u64;
            if let Some(f) = &mut self.reward_filter {
                let (term, trunc) = (self.venv.terminated(), self.venv.truncated());
                f.apply(
                    self.venv.rewards(),
                    |i| term[i] || trunc[i],
                    &mut self.step_rewards,
                );
                if self.recorder.is_some() {
                    for (r, &raw) in self.rows.iter_mut().zip(self.venv.rewards()) {
                        r.raw_rewards.push(raw);
                    }
                }
            }
            for i in 0..n {
                let reward = self.venv.rewards()[i];
                let (term, trunc) = (self.venv.terminated()[i], self.venv.truncated()[i]);
                let r = &mut self.rows[i];
                r.rewards.push(if self.reward_filter.is_some() {
                    self.step_rewards[i]
                } else {
                    reward
                });
                self.ep_return[i] += f64::from(reward);
                self.ep_len[i] += 1;
                if term || trunc {
                    let boot = if term {
                        None
                    } else {
                        let raw = &self.venv.final_obs()[i * d..][..d];
                        Self::filter_into(&mut self.filter, raw, false, &mut self.scratch);
                        self.boot.extend_from_slice(&self.scratch);
                        Some(self.boot.len() / d - 1)
                    };
                    let end = r.logp.len();
                    r.pieces.push(Fragment {
                        start: r.piece_start,
                        end,
                        terminated: term,
                        truncated: trunc && !term,
                        bootstrap: boot,
                        env: i,
                        starts_episode: r.piece_first_step == 0,
                        first_step: r.piece_first_step,
                    });
                    r.piece_start = end;
                    r.piece_first_step = 0;
                    episodes.push(EpisodeStat {
                        ret: self.ep_return[i],
                        len: self.ep_len[i],
                    });
                    self.ep_return[i] = 0.0;
                    self.ep_len[i] = 0;
                }
            }
        }
        // Episodes still running bootstrap from their next observation.
        for i in 0..n {
            let r = &mut self.rows[i];
            let end = r.logp.len();
            if r.piece_start < end {
                let raw = &self.venv.obs()[i * d..][..d];
                Self::filter_into(&mut self.filter, raw, false, &mut self.scratch);
                self.boot.extend_from_slice(&self.scratch);
                r.pieces.push(Fragment {
                    start: r.piece_start,
                    end,
                    bootstrap: Some(self.boot.len() / d - 1),
                    env: i,
                    starts_episode: r.piece_first_step == 0,
                    first_step: r.piece_first_step,
                    ..Fragment::default()
                });
            }
        }
        let mut batch = SampleBatch::new(d, ad, w);
        batch.bootstrap_obs = std::mem::take(&mut self.boot);
        for r in &self.rows {
            let offset = batch.len();
            batch.obs.extend_from_slice(&r.obs);
            batch.actions.extend_from_slice(&r.actions);
            batch.rewards.extend_from_slice(&r.rewards);
            batch.action_logp.extend_from_slice(&r.logp);
            batch.action_dist_inputs.extend_from_slice(&r.dist_inputs);
            batch.fragments.extend(r.pieces.iter().map(|f| Fragment {
                start: f.start + offset,
                end: f.end + offset,
                ..*f
            }));
        }
        if let Some(rec) = &mut self.recorder {
            // Without a filter the batch's observations (rewards) are the raw ones.
            let raw = |part: fn(&EnvRows) -> &Vec<f32>| -> Vec<f32> {
                self.rows
                    .iter()
                    .flat_map(|r| part(r).iter().copied())
                    .collect()
            };
            let obs = if self.filter.is_some() {
                raw(|r| &r.raw_obs)
            } else {
                batch.obs.clone()
            };
            let rewards = if self.reward_filter.is_some() {
                raw(|r| &r.raw_rewards)
            } else {
                batch.rewards.clone()
            };
            rec.record(&batch, &obs, &rewards);
        }
        SampleOutput {
            batch,
            filter_delta: self.filter.as_mut().map(MeanStdFilter::take_buffer),
            episodes,
        }
    }
}
