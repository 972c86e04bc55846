//! `Algorithm`: the driver. `train()` runs one iteration of the configured algorithm:
//! PPO samples a train batch on every env runner in parallel and updates once; DQN and SAC
//! repeat their training step (sample a fragment into the replay buffer, then replay
//! minibatches into gradient steps) until the iteration has sampled enough env steps.
//! Weights go out to the runners once per sample call, batches come back.

mod off_policy;
mod offline;
mod on_policy;
mod runners;

use std::collections::VecDeque;
use std::time::Instant;

use algorithms::metrics as m;
use algorithms::replay::ReplayBuffer;
use algorithms::{
    AlgorithmConfig, LearnerError, ModuleSpec, ObservationFilter, RunningStat, Weights,
};
use envs::Space;
use indexmap::IndexMap;
use ray::Runtime;

use crate::env_runner::{EpisodeStat, SampleOutput};
use crate::evaluate::evaluate_episodes;
use crate::learners::Learner;
use crate::offline::OfflineInput;
use crate::state::{AlgorithmState, Counters};

use self::runners::Runners;
pub use self::runners::check_resources;

/// Errors of a training run.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// Bad setup (env, spaces, weights).
    #[error("{0}")]
    Setup(String),
    /// The config asks for more CPUs or memory than this machine has.
    #[error("{0}")]
    Resources(String),
    /// The learner failed (a non-finite loss, a device error).
    #[error("iteration {iteration}: {source}")]
    Learner {
        /// The iteration that failed.
        iteration: u64,
        /// Why.
        source: LearnerError,
    },
    /// An env runner failed and could not be replaced.
    #[error("iteration {iteration}: {message}")]
    Runner {
        /// The iteration that failed.
        iteration: u64,
        /// Why.
        message: String,
    },
}

/// One iteration's metrics, by RLlib's names (the constants of [`algorithms::metrics`]), in
/// a stable order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TrainResult {
    /// Name to value; NaN where undefined (no episode finished yet).
    pub metrics: IndexMap<&'static str, f64>,
}

impl TrainResult {
    /// A metric by name.
    pub fn get(&self, name: &str) -> Option<f64> {
        self.metrics.get(name).copied()
    }

    /// Sets a metric.
    pub fn set(&mut self, name: &'static str, value: f64) {
        self.metrics.insert(name, value);
    }

    /// Sets the learner's losses, explained variance, entropy (and with `kl`, PPO's KL
    /// loss and coefficient), learning rate and gradient norm from one update.
    fn set_learner(&mut self, m: &algorithms::LearnerMetrics, kl: bool) {
        use algorithms::metrics::learner as lm;
        self.set(lm::TOTAL_LOSS, m.total_loss);
        self.set(lm::POLICY_LOSS, m.policy_loss);
        self.set(lm::VF_LOSS, m.vf_loss);
        self.set(lm::VF_EXPLAINED_VAR, m.vf_explained_var);
        self.set(lm::ENTROPY, m.entropy);
        if kl {
            self.set(lm::MEAN_KL_LOSS, m.mean_kl_loss);
            self.set(lm::CURR_KL_COEFF, m.curr_kl_coeff);
        }
        self.set(lm::LEARNING_RATE, m.curr_lr);
        self.set(lm::GRAD_NORM, m.gradients_global_norm);
    }
}

/// The driver.
pub struct Algorithm {
    cfg: AlgorithmConfig,
    spec: ModuleSpec,
    observation_space: Space,
    action_space: Space,
    seed: u64,
    runners: Runners,
    learner: Learner,
    replay: Option<ReplayBuffer>,
    filter: Option<RunningStat>,
    counters: Counters,
    window: VecDeque<EpisodeStat>,
    last_evaluation: Option<f64>,
    runtime: Runtime,
    restarts: u64,
    warnings: Vec<String>,
    /// The weights env runners act with, as last sent (reused from send to send).
    runner_weights: Weights,
    /// Whether the learner has moved since `runner_weights` was taken.
    runner_weights_stale: bool,
    /// The experiment's name, recorded in checkpoints written through Tune.
    experiment: Option<String>,
    /// Recorded episodes BC and MARWIL learn from (`input`).
    offline: Option<OfflineInput>,
}

impl Drop for Algorithm {
    /// The env runners write the episodes they recorded for `output` before they go.
    fn drop(&mut self) {
        if self.cfg.output.is_some()
            && let Err(e) = self.runners.finish_output()
        {
            eprintln!("{e}");
        }
    }
}

impl std::fmt::Debug for Algorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Algorithm")
            .field("algo", &self.cfg.algo)
            .field("env", &self.cfg.env)
            .field("counters", &self.counters)
            .finish()
    }
}

impl Algorithm {
    /// Builds the runtime, the env runners and the learner. `seed` is the run's seed (the
    /// caller draws one when the config has none, and records it).
    pub fn new(cfg: AlgorithmConfig, seed: u64) -> Result<Self, TrainError> {
        Self::new_on(cfg, seed, None)
    }

    /// As [`Algorithm::new`], with the env runners on the nodes of the cluster at `address`
    /// (the head's `host:port`, or `auto`) when one is given. The learner stays here.
    pub fn new_on(
        cfg: AlgorithmConfig,
        seed: u64,
        address: Option<&str>,
    ) -> Result<Self, TrainError> {
        let probe = envs::make(&cfg.env).map_err(|e| TrainError::Setup(e.to_string()))?;
        let observation_space = probe.observation_space().clone();
        let action_space = probe.action_space().clone();
        let spec = ModuleSpec::for_env(&cfg, &observation_space, &action_space)
            .map_err(TrainError::Setup)?;
        let cpus = ray::detect_cpus() as f64;
        let cluster = match address {
            // Connect first: the runners' CPUs are the cluster's, not this machine's.
            Some(a) => Some(
                ray::init(ray::InitOptions::new().num_cpus(cpus).address(a))
                    .map_err(|e| TrainError::Setup(format!("--address {a}: {e}")))?,
            ),
            None => None,
        };
        let runner_cpus = cluster
            .as_ref()
            .map_or(cpus, |rt| rt.cluster_resources().get(ray::CPU));
        check_resources(
            &cfg,
            &spec,
            cluster.is_some(),
            runner_cpus,
            cpus,
            ray::available_memory(),
        )?;
        let weights = spec.init(seed);
        let learner = Learner::new(&cfg, &spec, &weights, seed ^ 0x5eed)
            .map_err(|e| TrainError::Setup(format!("learner: {e}")))?;
        let rt = match cluster {
            Some(rt) => rt,
            None => ray::init(ray::InitOptions::new().num_cpus(cpus))
                .map_err(|e| TrainError::Setup(e.to_string()))?,
        };
        let runners = Runners::start(&rt, &cfg, &spec, &weights, seed)?;
        let filter = match cfg.observation_filter {
            ObservationFilter::MeanStdFilter => Some(RunningStat::new(spec.obs_dim())),
            ObservationFilter::NoFilter => None,
        };
        let replay = matches!(spec, ModuleSpec::Dqn(_) | ModuleSpec::Sac(_)).then(|| {
            ReplayBuffer::new(
                cfg.off_policy.replay.clone(),
                spec.obs_dim(),
                spec.action_dim(),
                seed ^ 0x7e91a7,
            )
        });
        let runner_weights = learner
            .inference_weights()
            .map_err(|e| TrainError::Setup(format!("learner: {e}")))?;
        let offline = match &cfg.input {
            Some(input) => Some(
                OfflineInput::open(
                    input,
                    spec.obs_dim(),
                    spec.action_dim(),
                    cfg.gamma,
                    seed ^ 0x0ff1,
                )
                .map_err(TrainError::Setup)?,
            ),
            None => None,
        };
        Ok(Algorithm {
            offline,
            runner_weights,
            runner_weights_stale: false,
            window: VecDeque::with_capacity(cfg.metrics_num_episodes_for_smoothing),
            cfg,
            spec,
            observation_space,
            action_space,
            seed,
            runtime: rt,
            restarts: 0,
            warnings: Vec::new(),
            runners,
            learner,
            replay,
            filter,
            counters: Counters::default(),
            last_evaluation: None,
            experiment: None,
        })
    }

    /// Names the experiment the run belongs to (recorded in its checkpoints).
    pub fn set_experiment(&mut self, name: &str) {
        self.experiment = Some(name.to_string());
    }

    /// The experiment's name, if set.
    pub fn experiment(&self) -> Option<&str> {
        self.experiment.as_deref()
    }

    /// The node each env runner lives on, in runner order (empty unless on a cluster).
    pub fn runner_nodes(&self) -> Vec<Option<String>> {
        self.runners.nodes()
    }

    /// Warnings since the last call (env runners that failed and were replaced).
    pub fn take_warnings(&mut self) -> Vec<String> {
        std::mem::take(&mut self.warnings)
    }

    /// The config.
    pub fn config(&self) -> &AlgorithmConfig {
        &self.cfg
    }

    /// The run's seed.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The module's shape.
    pub fn spec(&self) -> &ModuleSpec {
        &self.spec
    }

    /// The env's spaces.
    pub fn spaces(&self) -> (&Space, &Space) {
        (&self.observation_space, &self.action_space)
    }

    /// The counters.
    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// The synchronised filter statistics.
    pub fn filter(&self) -> Option<&RunningStat> {
        self.filter.as_ref()
    }

    /// The learner.
    pub fn learner(&self) -> &Learner {
        &self.learner
    }

    /// The finished episodes `episode_return_mean` averages.
    pub fn episode_window(&self) -> Vec<EpisodeStat> {
        self.window.iter().copied().collect()
    }

    /// Kills env runner `index` (1-based) as a crashed process or machine would; the next
    /// iteration finds it dead and replaces it (chaos testing). No-op without remote runners.
    pub fn kill_env_runner(&self, index: usize) {
        self.runners.kill(index);
    }

    /// How many env runners were replaced over the run.
    pub fn num_restarts(&self) -> u64 {
        self.restarts
    }

    /// Everything a checkpoint holds.
    pub fn get_state(&self) -> Result<AlgorithmState, String> {
        let keep_buffer = self.cfg.off_policy.store_buffer_in_checkpoints;
        Ok(AlgorithmState {
            counters: self.counters,
            filter: self.filter.clone(),
            episode_window: self.episode_window(),
            num_env_runner_restarts: self.restarts,
            runners: self.runners.states()?,
            learner: self.learner.get_state().map_err(|e| e.to_string())?,
            replay: self
                .replay
                .as_ref()
                .filter(|_| keep_buffer)
                .map(ReplayBuffer::state),
        })
    }

    /// Continues from a saved state: the learner (weights, optimizers, counters), filter,
    /// counters, the episode window, the replay buffer and, when the runner layout matches,
    /// every env runner's envs and episodes in progress. Returns a warning when runner states
    /// (or a replay buffer) could not be used.
    pub fn set_state(&mut self, s: &AlgorithmState) -> Result<Option<String>, String> {
        self.learner =
            Learner::from_state(&self.cfg, &self.spec, &s.learner).map_err(|e| e.to_string())?;
        if self.filter.is_some() {
            self.filter = Some(
                s.filter
                    .clone()
                    .unwrap_or_else(|| RunningStat::new(self.spec.obs_dim())),
            );
        }
        self.counters = s.counters;
        if let Some(input) = &mut self.offline {
            input.seek(s.counters.iteration * self.cfg.train_batch_size as u64)?;
        }
        self.window = s.episode_window.iter().copied().collect();
        while self.window.len() > self.cfg.metrics_num_episodes_for_smoothing {
            self.window.pop_front();
        }
        self.restarts = s.num_env_runner_restarts;
        let mut notes = Vec::new();
        match (&mut self.replay, &s.replay) {
            (Some(buf), Some(state)) => {
                *buf = ReplayBuffer::from_state(self.cfg.off_policy.replay.clone(), state.clone())
                    .map_err(|e| format!("replay buffer: {e}"))?;
            }
            (Some(_), None) => notes.push(
                "the checkpoint has no replay buffer (store_buffer_in_checkpoints was false): it starts empty".to_string(),
            ),
            _ => {}
        }
        let weights = self
            .learner
            .inference_weights()
            .map_err(|e| e.to_string())?;
        if let Some(w) = self.runners.set_states(
            s.runners.as_deref(),
            &weights,
            self.filter.as_ref(),
            &self.cfg,
        )? {
            notes.push(w);
        }
        Ok((!notes.is_empty()).then(|| notes.join("; ")))
    }

    /// The learner's current inference weights for the env runners, and whether they changed
    /// since the last call (only then are they copied out and sent).
    fn weights_for_runners(&mut self, iteration: u64) -> Result<bool, TrainError> {
        if !self.runner_weights_stale {
            return Ok(false);
        }
        self.learner
            .inference_weights_into(&mut self.runner_weights)
            .map_err(|source| TrainError::Learner { iteration, source })?;
        self.runner_weights_stale = false;
        Ok(true)
    }

    /// Writes a checkpoint of the run as `<trial_dir>/checkpoint_<iteration>` (see
    /// [`crate::checkpoint::save`]) and returns its path.
    pub fn save(
        &self,
        trial_dir: &std::path::Path,
        experiment: Option<&str>,
    ) -> Result<std::path::PathBuf, String> {
        let (state, config) = (self.get_state()?, self.config_json());
        crate::checkpoint::save(&state, self.run_info(&config, experiment), trial_dir)
            .map_err(|e| e.to_string())
    }

    /// Writes a checkpoint of the run into `dir` itself (see [`crate::checkpoint::save_into`]).
    pub fn save_into(&self, dir: &std::path::Path, experiment: Option<&str>) -> Result<(), String> {
        let (state, config) = (self.get_state()?, self.config_json());
        crate::checkpoint::save_into(&state, self.run_info(&config, experiment), dir)
            .map_err(|e| e.to_string())
    }

    /// The full config as a checkpoint records it.
    fn config_json(&self) -> serde_json::Value {
        crate::config::export::config_json(&self.cfg, self.seed)
    }

    /// What a checkpoint records beside the state.
    fn run_info<'a>(
        &'a self,
        config: &'a serde_json::Value,
        experiment: Option<&'a str>,
    ) -> crate::checkpoint::RunInfo<'a> {
        crate::checkpoint::RunInfo {
            spec: &self.spec,
            env: &self.cfg.env,
            spaces: self.spaces(),
            seed: self.seed,
            config,
            experiment,
        }
    }

    /// Continues from checkpoint `ck`, whose module must be this run's (see
    /// [`Algorithm::set_state`]).
    pub fn restore(
        &mut self,
        ck: &crate::checkpoint::Checkpoint,
    ) -> Result<Option<String>, String> {
        // The checkpoint's action bounds are the env's, which this run has.
        let mut spec = ck.spec.clone();
        if let Space::Box { low, high, .. } = &self.action_space {
            spec.set_action_bounds(low, high);
        }
        if spec != self.spec {
            return Err(format!(
                "{}/metadata.json: 'module_spec' ({}) does not match the network its config describes ({})",
                ck.path.display(),
                ck.spec.describe(),
                self.spec.describe()
            ));
        }
        self.set_state(&ck.state)
            .map_err(|e| format!("{}: {e}", ck.path.display()))
    }

    /// One training iteration.
    pub fn train(&mut self) -> Result<TrainResult, TrainError> {
        let start = Instant::now();
        let iteration = self.counters.iteration + 1;
        let mut r = TrainResult::default();
        let (sampling_s, learner_s, sampled, new_episodes) = match self.spec {
            ModuleSpec::Ppo(_) => self.train_on_policy(iteration, &mut r)?,
            ModuleSpec::Dqn(_) | ModuleSpec::Sac(_) => self.train_off_policy(iteration, &mut r)?,
            ModuleSpec::Bc(_) | ModuleSpec::Marwil(_) => self.train_offline(iteration, &mut r)?,
        };
        self.counters.iteration = iteration;
        if let Some(every) = self.cfg.evaluation_interval
            && iteration.is_multiple_of(every as u64)
        {
            self.last_evaluation = Some(self.evaluate()?);
        }
        let elapsed = start.elapsed().as_secs_f64();
        self.counters.time_total_s += elapsed;

        let mut out = TrainResult::default();
        let (mean, min, max, len) = self.window_stats();
        out.set(m::TRAINING_ITERATION, iteration as f64);
        out.set(m::EPISODE_RETURN_MEAN, mean);
        out.set(m::EPISODE_RETURN_MIN, min);
        out.set(m::EPISODE_RETURN_MAX, max);
        out.set(m::EPISODE_LEN_MEAN, len);
        out.set(m::NUM_EPISODES, new_episodes as f64);
        out.set(m::NUM_EPISODES_LIFETIME, self.counters.episodes as f64);
        out.set(m::NUM_ENV_STEPS_SAMPLED, sampled as f64);
        out.set(m::NUM_ENV_RUNNER_RESTARTS, self.restarts as f64);
        out.set(
            m::NUM_ENV_STEPS_SAMPLED_LIFETIME,
            self.counters.env_steps as f64,
        );
        out.set(
            m::NUM_ENV_STEPS_SAMPLED_LIFETIME_THROUGHPUT,
            sampled as f64 / elapsed.max(1e-9),
        );
        out.metrics.extend(r.metrics);
        if self.cfg.evaluation_interval.is_some() {
            out.set(
                m::EVALUATION_RETURN_MEAN,
                self.last_evaluation.unwrap_or(f64::NAN),
            );
        }
        // RLlib's timer names; "timers/" is excluded with "time*" from determinism checks.
        out.set(m::TIMER_SAMPLING, sampling_s);
        out.set(m::TIMER_LEARNER, learner_s);
        out.set(m::TIME_THIS_ITER_S, elapsed);
        out.set(m::TIME_TOTAL_S, self.counters.time_total_s);
        Ok(out)
    }

    /// Takes the runners' episodes and filter statistics into the run's.
    fn absorb(&mut self, outputs: &[SampleOutput]) -> usize {
        let mut new_episodes = 0;
        for o in outputs {
            if let (Some(central), Some(delta)) = (self.filter.as_mut(), &o.filter_delta) {
                central.merge(delta);
            }
            for e in &o.episodes {
                if self.window.len() >= self.cfg.metrics_num_episodes_for_smoothing {
                    self.window.pop_front();
                }
                self.window.push_back(*e);
                new_episodes += 1;
            }
            self.counters.env_steps += o.batch.len() as u64;
        }
        self.counters.episodes += new_episodes as u64;
        new_episodes
    }

    /// Mean, min and max return and mean length over the episode window (NaN if empty).
    fn window_stats(&self) -> (f64, f64, f64, f64) {
        if self.window.is_empty() {
            return (f64::NAN, f64::NAN, f64::NAN, f64::NAN);
        }
        let n = self.window.len() as f64;
        let mean = self.window.iter().map(|e| e.ret).sum::<f64>() / n;
        let min = self
            .window
            .iter()
            .map(|e| e.ret)
            .fold(f64::INFINITY, f64::min);
        let max = self
            .window
            .iter()
            .map(|e| e.ret)
            .fold(f64::NEG_INFINITY, f64::max);
        let len = self.window.iter().map(|e| f64::from(e.len)).sum::<f64>() / n;
        (mean, min, max, len)
    }

    /// Greedy evaluation over `evaluation_duration` episodes; returns the mean return.
    fn evaluate(&mut self) -> Result<f64, TrainError> {
        let iteration = self.counters.iteration;
        let weights = self
            .learner
            .inference_weights()
            .map_err(|source| TrainError::Learner { iteration, source })?;
        let eps = evaluate_episodes(
            &self.cfg,
            &self.spec,
            &weights,
            self.filter.as_ref(),
            self.cfg.evaluation_duration,
            self.seed.wrapping_add(1_000_000 + iteration),
            false,
            None,
            None,
        )
        .map_err(TrainError::Setup)?;
        Ok(eps.return_mean())
    }
}
