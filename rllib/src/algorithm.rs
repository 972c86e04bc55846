//! `Algorithm`: the driver. `train()` runs one PPO iteration: broadcast weights, sample on
//! every env runner in parallel, merge filter statistics, update the learner, report metrics.

use std::collections::VecDeque;
use std::time::Instant;

use algorithms::{
    ActionSpec, AlgorithmConfig, LearnerError, ObservationFilter, PpoLearner, PpoModuleSpec,
    RunningStat, SampleBatch, Weights,
};
use envs::Space;
use ray::{ActorHandle, ObjectRef, RayError, Runtime};

use crate::checkpoint::Checkpoint;
use crate::env_runner::{EnvRunner, EpisodeStat, RunnerState, SampleOutput};
use crate::evaluate::evaluate_episodes;

/// RLlib's `metrics_num_episodes_for_smoothing`.
pub const SMOOTHING_EPISODES: usize = 100;

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

/// One iteration's metrics, in a stable order, with RLlib's names.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TrainResult {
    /// `(name, value)` pairs; NaN where undefined (no episode finished yet).
    pub metrics: Vec<(String, f64)>,
}

impl TrainResult {
    /// A metric by name.
    pub fn get(&self, name: &str) -> Option<f64> {
        self.metrics
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| *v)
    }

    fn push(&mut self, name: &str, value: f64) {
        self.metrics.push((name.to_string(), value));
    }
}

enum Runners {
    /// `num_env_runners: 0`: sampling in the driver, as RLlib does.
    Local(Box<EnvRunner>),
    Remote(Vec<ActorHandle<EnvRunner>>),
}

/// Counters that a checkpoint carries and a restore continues.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Counters {
    /// Iterations done.
    pub iteration: u64,
    /// Env steps sampled over the run's life.
    pub env_steps: u64,
    /// Episodes finished over the run's life.
    pub episodes: u64,
    /// Seconds spent in `train()` over the run's life.
    pub time_total_s: f64,
}

/// The PPO driver.
pub struct Algorithm {
    cfg: AlgorithmConfig,
    spec: PpoModuleSpec,
    observation_space: Space,
    action_space: Space,
    seed: u64,
    runners: Runners,
    learner: PpoLearner,
    filter: Option<RunningStat>,
    counters: Counters,
    window: VecDeque<EpisodeStat>,
    last_evaluation: Option<f64>,
    runtime: Runtime,
    restarts: u64,
    warnings: Vec<String>,
}

impl std::fmt::Debug for Algorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Algorithm")
            .field("env", &self.cfg.env)
            .field("counters", &self.counters)
            .finish()
    }
}

/// The network shape for an env's spaces and the config's model.
pub fn module_spec(
    cfg: &AlgorithmConfig,
    obs: &Space,
    act: &Space,
) -> Result<PpoModuleSpec, String> {
    let action = match act {
        Space::Discrete { n, .. } => ActionSpec::Discrete(*n as usize),
        Space::Box { low, high, .. } => ActionSpec::Box {
            dim: low.len(),
            low: low.clone(),
            high: high.clone(),
        },
    };
    Ok(PpoModuleSpec {
        obs_dim: obs.flat_dim(),
        action,
        model: cfg.model.clone(),
    })
}

/// Starts env-runner actor `w` (1-based, as RLlib numbers remote runners), holding
/// `num_cpus_per_env_runner` CPUs of the runtime.
fn spawn_runner(
    rt: &Runtime,
    cfg: &AlgorithmConfig,
    spec: &PpoModuleSpec,
    weights: &Weights,
    seed: u64,
    w: usize,
) -> Result<ActorHandle<EnvRunner>, RayError> {
    let (c, s, wt) = (cfg.clone(), spec.clone(), weights.clone());
    rt.actor(move || match EnvRunner::new(&c, s.clone(), &wt, seed, w) {
        Ok(r) => r,
        Err(e) => panic!("{e}"),
    })
    .name(format!("EnvRunner-{w}"))
    .num_cpus(cfg.num_cpus_per_env_runner)
    .spawn()
}

/// "or give each runner a fraction of a CPU (num_cpus_per_env_runner: 0.5)", where one fits.
fn fraction_hint(cpus: f64, runners: usize) -> String {
    // Runtime amounts are counted in 1/10,000 of a CPU.
    let share = (cpus / runners.max(1) as f64 * 1e4).floor() / 1e4;
    if share >= 1e-4 {
        format!(
            ", or give each runner a fraction of a CPU to share them (num_cpus_per_env_runner: {})",
            crate::config::fmt_num(share)
        )
    } else {
        String::new()
    }
}

/// Refuses a config that this machine cannot run: more CPUs than it has for the env runners
/// or the learner, or more memory than is available. Runs before anything large is allocated.
pub fn check_resources(
    cfg: &AlgorithmConfig,
    spec: &PpoModuleSpec,
    cpus: f64,
    available_memory: Option<u64>,
) -> Result<(), TrainError> {
    let need = cfg.num_env_runners as f64 * cfg.num_cpus_per_env_runner;
    // Fixed point, as the runtime counts (1/10,000 of a CPU).
    if (need * 1e4).round() > (cpus * 1e4).round() {
        return Err(TrainError::Resources(format!(
            "num_env_runners: {} env runners x num_cpus_per_env_runner: {} need {} CPUs, but this machine has {cpus}; lower num_env_runners (or --num-env-runners){}",
            cfg.num_env_runners,
            crate::config::fmt_num(cfg.num_cpus_per_env_runner),
            crate::config::fmt_num(need),
            fraction_hint(cpus, cfg.num_env_runners)
        )));
    }
    // The learner holds no CPUs of its own (as a local learner in Ray's build_algo): it
    // borrows the runners' cores while they wait, so its threads are bounded by the machine.
    if let Some(n) = cfg.num_cpus_per_learner
        && n as f64 > cpus
    {
        return Err(TrainError::Resources(format!(
            "num_cpus_per_learner: {n} asks for {n} learner threads, but this machine has {cpus} CPUs; lower num_cpus_per_learner (at most {cpus}) or use \"auto\""
        )));
    }
    let estimate = algorithms::memory::estimate(cfg, spec, cfg.learner_threads());
    if let Some(avail) = available_memory
        && estimate.total() > avail as f64
    {
        return Err(TrainError::Resources(format!(
            "this config needs about {} of memory, more than the {} available: {}",
            algorithms::memory::human_bytes(estimate.total()),
            algorithms::memory::human_bytes(avail as f64),
            estimate.describe(2)
        )));
    }
    Ok(())
}

impl Algorithm {
    /// Warnings since the last call (env runners that failed and were replaced).
    pub fn take_warnings(&mut self) -> Vec<String> {
        std::mem::take(&mut self.warnings)
    }

    /// Builds the runtime, the env runners and the learner. `seed` is the run's seed (the
    /// caller draws one when the config has none, and records it).
    pub fn new(cfg: AlgorithmConfig, seed: u64) -> Result<Self, TrainError> {
        if cfg.algo != algorithms::Algo::Ppo {
            return Err(TrainError::Setup(format!(
                "{} is not available in this build yet",
                cfg.algo
            )));
        }
        let probe = envs::make(&cfg.env).map_err(|e| TrainError::Setup(e.to_string()))?;
        let observation_space = probe.observation_space().clone();
        let action_space = probe.action_space().clone();
        let spec =
            module_spec(&cfg, &observation_space, &action_space).map_err(TrainError::Setup)?;
        let cpus = ray::detect_cpus() as f64;
        check_resources(&cfg, &spec, cpus, ray::available_memory())?;
        let weights = spec.init(seed);
        let learner = PpoLearner::new(cfg.clone(), spec.clone(), &weights, seed ^ 0x5eed)
            .map_err(|e| TrainError::Setup(format!("learner: {e}")))?;

        let rt = ray::init(ray::InitOptions::new().num_cpus(cpus))
            .map_err(|e| TrainError::Setup(e.to_string()))?;
        let runners = if cfg.num_env_runners == 0 {
            let r =
                EnvRunner::new(&cfg, spec.clone(), &weights, seed, 0).map_err(TrainError::Setup)?;
            Runners::Local(Box::new(r))
        } else {
            let mut handles = Vec::new();
            for w in 1..=cfg.num_env_runners {
                let h = spawn_runner(&rt, &cfg, &spec, &weights, seed, w)
                    .map_err(|e| TrainError::Setup(format!("EnvRunner-{w}: {e}")))?;
                handles.push(h);
            }
            // Every runner answers once before training starts, so that one that cannot
            // start (no thread, an env that fails to build) is a setup error, not a restart.
            let ready: Vec<_> = handles
                .iter()
                .map(|h| h.call(|r: &mut EnvRunner| r.num_envs()))
                .collect();
            for (i, r) in ready.into_iter().enumerate() {
                r.get().map_err(|e| {
                    TrainError::Setup(format!("EnvRunner-{} could not start: {e}", i + 1))
                })?;
            }
            Runners::Remote(handles)
        };
        let filter = match cfg.observation_filter {
            ObservationFilter::MeanStdFilter => Some(RunningStat::new(spec.obs_dim)),
            ObservationFilter::NoFilter => None,
        };
        Ok(Algorithm {
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
            filter,
            counters: Counters::default(),
            window: VecDeque::with_capacity(SMOOTHING_EPISODES),
            last_evaluation: None,
        })
    }

    /// The config.
    pub fn config(&self) -> &AlgorithmConfig {
        &self.cfg
    }

    /// The run's seed.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The network's shape.
    pub fn spec(&self) -> &PpoModuleSpec {
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

    /// The learner (weights, optimizer state, KL coefficient).
    pub fn learner(&self) -> &PpoLearner {
        &self.learner
    }

    /// Every runner's state, if the env can save its state (for checkpoints).
    pub fn runner_states(&self) -> Result<Option<Vec<RunnerState>>, String> {
        match &self.runners {
            Runners::Local(r) => Ok(r.state().map(|s| vec![s])),
            Runners::Remote(handles) => {
                let refs: Vec<_> = handles
                    .iter()
                    .map(|h| h.call(|r: &mut EnvRunner| r.state()))
                    .collect();
                let mut out = Vec::with_capacity(refs.len());
                for r in refs {
                    match r.get().map_err(|e| e.to_string())? {
                        Some(s) => out.push(s),
                        None => return Ok(None),
                    }
                }
                Ok(Some(out))
            }
        }
    }

    /// The last 100 finished episodes (what `episode_return_mean` averages).
    pub fn episode_window(&self) -> Vec<EpisodeStat> {
        self.window.iter().copied().collect()
    }

    /// Kills env runner `index` (1-based) as a crashed process or machine would; the next
    /// iteration finds it dead and replaces it (chaos testing). No-op without remote runners.
    pub fn kill_env_runner(&self, index: usize) {
        if let Runners::Remote(handles) = &self.runners
            && let Some(h) = index.checked_sub(1).and_then(|i| handles.get(i))
        {
            h.kill();
        }
    }

    /// How many env runners were replaced over the run.
    pub fn num_restarts(&self) -> u64 {
        self.restarts
    }

    /// Continues from a checkpoint: weights, optimizer, KL coefficient, shuffling generator,
    /// filter, counters, the episode window and, when the runner layout matches, every env
    /// runner's envs and episodes in progress. Returns a warning when runner states could not
    /// be used.
    pub fn restore(&mut self, ck: &Checkpoint) -> Result<Option<String>, String> {
        self.spec.check(&ck.weights)?;
        self.learner = PpoLearner::new(self.cfg.clone(), self.spec.clone(), &ck.weights, 0)
            .map_err(|e| e.to_string())?;
        self.learner
            .set_optimizer_state(&ck.optimizer)
            .map_err(|e| e.to_string())?;
        self.learner.set_kl_coeff(ck.kl_coeff);
        self.learner.set_rng_state(ck.shuffle_rng);
        if self.filter.is_some() {
            self.filter = ck
                .filter
                .clone()
                .or_else(|| Some(RunningStat::new(self.spec.obs_dim)));
        }
        self.counters = ck.counters;
        self.window = ck.episode_window.iter().copied().collect();
        self.restarts = ck.num_env_runner_restarts;
        let Some(states) = &ck.runners else {
            return Ok(Some(
                "the checkpoint has no env-runner state: episodes start afresh".into(),
            ));
        };
        let envs = self.cfg.num_envs_per_env_runner;
        let fits = |n: usize| states.len() == n && states.iter().all(|s| s.envs.len() == envs);
        let results: Vec<Result<(), String>> = match &mut self.runners {
            Runners::Local(r) if fits(1) => vec![r.set_state(&states[0])],
            Runners::Remote(handles) if fits(handles.len()) => {
                let refs: Vec<_> = handles
                    .iter()
                    .zip(states)
                    .map(|(h, s)| {
                        let s = s.clone();
                        h.call(move |r: &mut EnvRunner| r.set_state(&s))
                    })
                    .collect();
                refs.into_iter()
                    .map(|r| r.get().map_err(|e| e.to_string()).and_then(|x| x))
                    .collect()
            }
            _ => {
                return Ok(Some(format!(
                    "the checkpoint's {} env-runner state(s) do not fit this run's {} runner(s) of {envs} env(s): episodes start afresh",
                    states.len(),
                    self.cfg.num_env_runners.max(1)
                )));
            }
        };
        // The layout fits, so a state that does not load is a damaged checkpoint.
        for (i, r) in results.into_iter().enumerate() {
            r.map_err(|e| format!("env_runner/state.json: 'runners[{i}]': {e}"))?;
        }
        Ok(None)
    }

    fn sample(&mut self, weights: Weights) -> Result<Vec<SampleOutput>, TrainError> {
        let steps = self.cfg.rollout_fragment_length();
        let iteration = self.counters.iteration + 1;
        let handles = match &mut self.runners {
            Runners::Local(r) => {
                r.sync(&weights, self.filter.as_ref())
                    .map_err(TrainError::Setup)?;
                // The driver's own runner has no replacement: its failure ends the run.
                return std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| r.sample(steps)))
                    .map(|o| vec![o])
                    .map_err(|p| TrainError::Runner {
                        iteration,
                        message: format!(
                            "the local env runner failed: {}",
                            ray::panic_message(&*p)
                        ),
                    });
            }
            Runners::Remote(handles) => handles,
        };
        // Weights go out once, through the object store; one batch comes back per runner.
        let shared: ObjectRef<Weights> = self.runtime.put(weights.clone());
        let refs: Vec<_> = handles
            .iter()
            .map(|h| {
                let (w, f) = (shared.clone(), self.filter.clone());
                h.call(move |r: &mut EnvRunner| -> Result<SampleOutput, String> {
                    let w = w.get_arc().map_err(|e| e.to_string())?;
                    r.sync(&w, f.as_ref())?;
                    Ok(r.sample(steps))
                })
            })
            .collect();
        let mut out = Vec::with_capacity(refs.len());
        for (i, r) in refs.into_iter().enumerate() {
            let failure = match r.get() {
                Ok(Ok(o)) => {
                    out.push(o);
                    continue;
                }
                Ok(Err(e)) => e,
                Err(e) => e.to_string(),
            };
            let w = i + 1;
            if !self.cfg.restart_failed_env_runners {
                return Err(TrainError::Runner {
                    iteration,
                    message: format!(
                        "EnvRunner-{w} failed ({failure}) and restart_failed_env_runners is false"
                    ),
                });
            }
            if self.restarts >= self.cfg.max_num_env_runner_restarts as u64 {
                return Err(TrainError::Runner {
                    iteration,
                    message: format!(
                        "EnvRunner-{w} failed ({failure}) after {} restarts (max_num_env_runner_restarts)",
                        self.restarts
                    ),
                });
            }
            handles[i].kill();
            handles[i] = spawn_runner(&self.runtime, &self.cfg, &self.spec, &weights, self.seed, w)
                .map_err(|e| TrainError::Runner {
                    iteration,
                    message: format!("EnvRunner-{w} could not be restarted: {e}"),
                })?;
            self.restarts += 1;
            self.warnings.push(format!(
                "iteration {iteration}: EnvRunner-{w} failed ({failure}); replaced it, the iteration goes on without its samples"
            ));
        }
        if out.is_empty() {
            return Err(TrainError::Runner {
                iteration,
                message: "every env runner failed; no samples to learn from".to_string(),
            });
        }
        Ok(out)
    }

    /// One training iteration.
    pub fn train(&mut self) -> Result<TrainResult, TrainError> {
        let start = Instant::now();
        let iteration = self.counters.iteration + 1;
        let weights = self
            .learner
            .weights()
            .map_err(|source| TrainError::Learner { iteration, source })?;
        let outputs = self.sample(weights)?;
        let sampling_s = start.elapsed().as_secs_f64();

        let mut batch = SampleBatch::new(
            self.spec.obs_dim,
            self.spec.action.action_dim(),
            self.spec.action.dist_width(),
        );
        let mut new_episodes = 0usize;
        for o in &outputs {
            batch.append(&o.batch);
            if let (Some(central), Some(delta)) = (self.filter.as_mut(), &o.filter_delta) {
                central.merge(delta);
            }
            for e in &o.episodes {
                if self.window.len() == SMOOTHING_EPISODES {
                    self.window.pop_front();
                }
                self.window.push_back(*e);
                new_episodes += 1;
            }
        }
        let sampled = batch.len() as u64;
        self.counters.env_steps += sampled;
        self.counters.episodes += new_episodes as u64;

        let learn_start = Instant::now();
        let lm = self
            .learner
            .update(&batch, self.counters.env_steps)
            .map_err(|source| TrainError::Learner { iteration, source })?;
        let learner_s = learn_start.elapsed().as_secs_f64();
        self.counters.iteration = iteration;

        if let Some(every) = self.cfg.evaluation_interval
            && iteration.is_multiple_of(every as u64)
        {
            self.last_evaluation = Some(self.evaluate()?);
        }
        let elapsed = start.elapsed().as_secs_f64();
        self.counters.time_total_s += elapsed;

        let mut r = TrainResult::default();
        let (mean, min, max, len) = self.window_stats();
        r.push("training_iteration", iteration as f64);
        r.push("env_runners/episode_return_mean", mean);
        r.push("env_runners/episode_return_min", min);
        r.push("env_runners/episode_return_max", max);
        r.push("env_runners/episode_len_mean", len);
        r.push("env_runners/num_episodes", new_episodes as f64);
        r.push(
            "env_runners/num_episodes_lifetime",
            self.counters.episodes as f64,
        );
        r.push("env_runners/num_env_steps_sampled", sampled as f64);
        r.push("env_runners/num_env_runner_restarts", self.restarts as f64);
        r.push(
            "num_env_steps_sampled_lifetime",
            self.counters.env_steps as f64,
        );
        r.push(
            "num_env_steps_sampled_lifetime_throughput",
            sampled as f64 / elapsed.max(1e-9),
        );
        let p = "learners/default_policy/";
        r.push(&format!("{p}total_loss"), lm.total_loss);
        r.push(&format!("{p}policy_loss"), lm.policy_loss);
        r.push(&format!("{p}vf_loss"), lm.vf_loss);
        r.push(&format!("{p}vf_explained_var"), lm.vf_explained_var);
        r.push(&format!("{p}entropy"), lm.entropy);
        r.push(&format!("{p}mean_kl_loss"), lm.mean_kl_loss);
        r.push(&format!("{p}curr_kl_coeff"), lm.curr_kl_coeff);
        r.push(&format!("{p}default_optimizer_learning_rate"), lm.curr_lr);
        r.push(
            &format!("{p}gradients_default_optimizer_global_norm"),
            lm.gradients_global_norm,
        );
        if self.cfg.evaluation_interval.is_some() {
            r.push(
                "evaluation/env_runners/episode_return_mean",
                self.last_evaluation.unwrap_or(f64::NAN),
            );
        }
        // RLlib's timer names; "timers/" is excluded with "time*" from determinism checks.
        r.push("timers/env_runner_sampling_timer", sampling_s);
        r.push("timers/learner_update_timer", learner_s);
        r.push("time_this_iter_s", elapsed);
        r.push("time_total_s", self.counters.time_total_s);
        Ok(r)
    }

    /// Mean, min and max return and mean length over the last 100 episodes (NaN if none).
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
            .weights()
            .map_err(|source| TrainError::Learner { iteration, source })?;
        let eps = evaluate_episodes(
            &self.cfg.env,
            self.spec.clone(),
            &weights,
            self.filter.as_ref(),
            self.cfg.evaluation_duration,
            self.seed.wrapping_add(1_000_000 + iteration),
            false,
            None,
        )
        .map_err(TrainError::Setup)?;
        Ok(eps.return_mean())
    }
}
