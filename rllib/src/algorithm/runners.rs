//! The env runners of a run: one in the driver (`num_env_runners: 0`, as RLlib samples then)
//! or actors on the runtime, each holding `num_cpus_per_env_runner` CPUs; weights go out
//! through the object store once per sample call, one batch comes back per runner, and a
//! failed runner is replaced.

use algorithms::{AlgorithmConfig, ModuleSpec, RunningStat, Weights};
use ray::{ActorHandle, ObjectRef, RayError, RemoteActorHandle, Runtime};

use super::TrainError;
use crate::env_runner::{EnvRunner, RunnerState, SampleOutput};
use crate::remote_runner::{ENV_RUNNER, RunnerArgs, SampleArgs, SetStateArgs};

/// The env runners.
pub(super) enum Runners {
    /// `num_env_runners: 0`: sampling in the driver.
    Local(Box<EnvRunner>),
    /// Actors, numbered from 1 as RLlib numbers remote runners.
    Remote {
        handles: Vec<ActorHandle<EnvRunner>>,
        cfg: Box<AlgorithmConfig>,
        spec: ModuleSpec,
        seed: u64,
    },
    /// Actors on the nodes of a cluster (`--address`), placed by `num_cpus_per_env_runner`
    /// and rebuilt on another node when theirs dies.
    Cluster {
        handles: Vec<RemoteActorHandle>,
        /// Each runner's restart count when it last got weights.
        synced_at: Vec<Option<u32>>,
    },
}

/// Starts env-runner actor `w` (1-based) on some node of the cluster.
fn spawn_cluster_runner(
    rt: &Runtime,
    cfg: &AlgorithmConfig,
    weights: &Weights,
    seed: u64,
    w: usize,
) -> Result<RemoteActorHandle, RayError> {
    let restarts = if cfg.restart_failed_env_runners {
        cfg.max_num_env_runner_restarts.min(u32::MAX as usize) as u32
    } else {
        0
    };
    rt.remote_actor(ENV_RUNNER)
        .args(&RunnerArgs {
            cfg: cfg.clone(),
            weights: weights.clone(),
            seed,
            worker_index: w,
        })
        .num_cpus(cfg.num_cpus_per_env_runner)
        .max_restarts(restarts)
        .spawn()
}

/// Starts env-runner actor `w` (1-based), holding `num_cpus_per_env_runner` CPUs.
fn spawn_runner(
    rt: &Runtime,
    cfg: &AlgorithmConfig,
    spec: &ModuleSpec,
    weights: &Weights,
    seed: u64,
    w: usize,
) -> Result<ActorHandle<EnvRunner>, RayError> {
    let (c, s, wt) = (cfg.clone(), spec.clone(), weights.clone());
    rt.actor(move || match EnvRunner::new(&c, &s, &wt, seed, w) {
        Ok(r) => r,
        Err(e) => panic!("{e}"),
    })
    .name(format!("EnvRunner-{w}"))
    .num_cpus(cfg.num_cpus_per_env_runner)
    .spawn()
}

impl Runners {
    /// Every runner writes what it recorded for `output` and stops recording; the first
    /// error, if any.
    pub(super) fn finish_output(&mut self) -> Result<(), String> {
        let mut first = Ok(());
        match self {
            Runners::Local(r) => first = r.finish_output(),
            Runners::Remote { handles, .. } => {
                let calls: Vec<_> = handles
                    .iter()
                    .map(|h| h.call(|r: &mut EnvRunner| r.finish_output()))
                    .collect();
                for c in calls {
                    let done = c.get().map_err(|e| e.to_string()).and_then(|r| r);
                    if first.is_ok() {
                        first = done;
                    }
                }
            }
            Runners::Cluster { handles, .. } => {
                for h in handles.iter() {
                    let done = h
                        .call::<_, Result<(), String>>("finish_output", &())
                        .map_err(|e| e.to_string())
                        .and_then(|c| c.get().map_err(|e| e.to_string()))
                        .and_then(|r| r);
                    if first.is_ok() {
                        first = done;
                    }
                }
            }
        }
        first
    }

    /// Starts the runners; each answers once before training starts, so that one that cannot
    /// start (no thread, an env that fails to build) is a setup error, not a restart.
    pub(super) fn start(
        rt: &Runtime,
        cfg: &AlgorithmConfig,
        spec: &ModuleSpec,
        weights: &Weights,
        seed: u64,
    ) -> Result<Self, TrainError> {
        if cfg.num_env_runners == 0 {
            let r = EnvRunner::new(cfg, spec, weights, seed, 0).map_err(TrainError::Setup)?;
            return Ok(Runners::Local(Box::new(r)));
        }
        if rt.is_cluster() {
            let mut handles = Vec::new();
            for w in 1..=cfg.num_env_runners {
                handles.push(
                    spawn_cluster_runner(rt, cfg, weights, seed, w)
                        .map_err(|e| TrainError::Setup(format!("EnvRunner-{w}: {e}")))?,
                );
            }
            let ready: Vec<_> = handles
                .iter()
                .map(|h| h.call::<_, usize>("num_envs", &()))
                .collect::<Result<_, _>>()
                .map_err(|e| TrainError::Setup(e.to_string()))?;
            for (i, r) in ready.into_iter().enumerate() {
                r.get().map_err(|e| {
                    TrainError::Setup(format!("EnvRunner-{} could not start: {e}", i + 1))
                })?;
            }
            let synced_at = handles.iter().map(|h| Some(h.num_restarts())).collect();
            return Ok(Runners::Cluster { handles, synced_at });
        }
        let mut handles = Vec::new();
        for w in 1..=cfg.num_env_runners {
            let h = spawn_runner(rt, cfg, spec, weights, seed, w)
                .map_err(|e| TrainError::Setup(format!("EnvRunner-{w}: {e}")))?;
            handles.push(h);
        }
        let ready: Vec<_> = handles
            .iter()
            .map(|h| h.call(|r: &mut EnvRunner| r.num_envs()))
            .collect();
        for (i, r) in ready.into_iter().enumerate() {
            r.get().map_err(|e| {
                TrainError::Setup(format!("EnvRunner-{} could not start: {e}", i + 1))
            })?;
        }
        Ok(Runners::Remote {
            handles,
            cfg: Box::new(cfg.clone()),
            spec: spec.clone(),
            seed,
        })
    }

    /// Kills runner `index` (1-based); no-op without remote runners.
    pub(super) fn kill(&self, index: usize) {
        if let Runners::Remote { handles, .. } = self
            && let Some(h) = index.checked_sub(1).and_then(|i| handles.get(i))
        {
            h.kill();
        }
        if let Runners::Cluster { handles, .. } = self
            && let Some(h) = index.checked_sub(1).and_then(|i| handles.get(i))
        {
            h.kill();
        }
    }

    /// The nodes the runners live on (cluster mode), in runner order.
    pub(super) fn nodes(&self) -> Vec<Option<String>> {
        match self {
            Runners::Cluster { handles, .. } => handles.iter().map(|h| h.node_id()).collect(),
            _ => Vec::new(),
        }
    }

    /// Every runner's state, if the env can save its state.
    pub(super) fn states(&self) -> Result<Option<Vec<RunnerState>>, String> {
        match self {
            Runners::Local(r) => Ok(r.state().map(|s| vec![s])),
            Runners::Cluster { handles, .. } => {
                let refs: Vec<_> = handles
                    .iter()
                    .map(|h| h.call::<_, Option<RunnerState>>("state", &()))
                    .collect::<Result<_, _>>()
                    .map_err(|e| e.to_string())?;
                let mut out = Vec::with_capacity(refs.len());
                for r in refs {
                    match r.get().map_err(|e| e.to_string())? {
                        Some(s) => out.push(s),
                        None => return Ok(None),
                    }
                }
                Ok(Some(out))
            }
            Runners::Remote { handles, .. } => {
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

    /// Restores every runner's state when the layout fits (else a warning), and gives them
    /// `weights` and the filter.
    pub(super) fn set_states(
        &mut self,
        states: Option<&[RunnerState]>,
        weights: &Weights,
        filter: Option<&RunningStat>,
        cfg: &AlgorithmConfig,
    ) -> Result<Option<String>, String> {
        let Some(states) = states else {
            return Ok(Some(
                "the checkpoint has no env-runner state: episodes start afresh".into(),
            ));
        };
        let envs = cfg.num_envs_per_env_runner;
        let fits = |n: usize| states.len() == n && states.iter().all(|s| s.envs.len() == envs);
        let results: Vec<Result<(), String>> = match self {
            Runners::Local(r) if fits(1) => vec![
                r.set_state(&states[0])
                    .and_then(|()| r.sync(weights, filter)),
            ],
            Runners::Cluster { handles, .. } if fits(handles.len()) => {
                let mut refs = Vec::new();
                for (h, s) in handles.iter().zip(states) {
                    let a: SetStateArgs = (s.clone(), weights.clone(), filter.cloned());
                    refs.push(
                        h.call::<_, Result<(), String>>("set_state", &a)
                            .map_err(|e| e.to_string())?,
                    );
                }
                refs.into_iter()
                    .map(|r| r.get().map_err(|e| e.to_string()).and_then(|x| x))
                    .collect()
            }
            Runners::Remote { handles, .. } if fits(handles.len()) => {
                let refs: Vec<_> = handles
                    .iter()
                    .zip(states)
                    .map(|(h, s)| {
                        let (s, w, f) = (s.clone(), weights.clone(), filter.cloned());
                        h.call(move |r: &mut EnvRunner| {
                            r.set_state(&s).and_then(|()| r.sync(&w, f.as_ref()))
                        })
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
                    cfg.num_env_runners.max(1)
                )));
            }
        };
        // The layout fits, so a state that does not load is a damaged checkpoint.
        for (i, r) in results.into_iter().enumerate() {
            r.map_err(|e| format!("env_runner/state.json: 'runners[{i}]': {e}"))?;
        }
        Ok(None)
    }

    /// One sample call on every runner with these weights and filter: `steps` per env.
    /// Failed runners are replaced (the call goes on with the others' samples) while
    /// `restart_failed_env_runners` and `max_num_env_runner_restarts` allow.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn sample(
        &mut self,
        rt: &Runtime,
        weights: &Weights,
        weights_changed: bool,
        filter: Option<&RunningStat>,
        steps: usize,
        iteration: u64,
        restarts: &mut u64,
        warnings: &mut Vec<String>,
    ) -> Result<Vec<SampleOutput>, TrainError> {
        let (handles, cfg, spec, seed) = match self {
            Runners::Local(r) => {
                if weights_changed {
                    r.sync(weights, filter).map_err(TrainError::Setup)?;
                } else {
                    r.sync_filter(filter);
                }
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
            Runners::Remote {
                handles,
                cfg,
                spec,
                seed,
            } => (handles, &*cfg, &*spec, *seed),
            Runners::Cluster { handles, synced_at } => {
                return sample_cluster(
                    handles,
                    synced_at,
                    weights,
                    weights_changed,
                    filter,
                    steps,
                    iteration,
                    restarts,
                    warnings,
                );
            }
        };
        // Weights go out once through the object store, and only when they changed.
        let shared: Option<ObjectRef<Weights>> = weights_changed.then(|| rt.put(weights.clone()));
        let refs: Vec<_> = handles
            .iter()
            .map(|h| {
                let (w, f) = (shared.clone(), filter.cloned());
                h.call(move |r: &mut EnvRunner| -> Result<SampleOutput, String> {
                    match w {
                        Some(w) => {
                            let w = w.get_arc().map_err(|e| e.to_string())?;
                            r.sync(&w, f.as_ref())?;
                        }
                        None => r.sync_filter(f.as_ref()),
                    }
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
            if !cfg.restart_failed_env_runners {
                return Err(TrainError::Runner {
                    iteration,
                    message: format!(
                        "EnvRunner-{w} failed ({failure}) and restart_failed_env_runners is false"
                    ),
                });
            }
            if *restarts >= cfg.max_num_env_runner_restarts as u64 {
                return Err(TrainError::Runner {
                    iteration,
                    message: format!(
                        "EnvRunner-{w} failed ({failure}) after {restarts} restarts (max_num_env_runner_restarts)"
                    ),
                });
            }
            handles[i].kill();
            handles[i] =
                spawn_runner(rt, cfg, spec, weights, seed, w).map_err(|e| TrainError::Runner {
                    iteration,
                    message: format!("EnvRunner-{w} could not be restarted: {e}"),
                })?;
            *restarts += 1;
            warnings.push(format!(
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
}

/// One sample call on every runner of the cluster. A runner whose node died fails this call
/// (the iteration goes on with the others' samples) and is rebuilt on another node by the
/// runtime while its restarts last; a rebuilt runner gets the weights with its next call.
#[allow(clippy::too_many_arguments)]
fn sample_cluster(
    handles: &[RemoteActorHandle],
    synced_at: &mut [Option<u32>],
    weights: &Weights,
    weights_changed: bool,
    filter: Option<&RunningStat>,
    steps: usize,
    iteration: u64,
    restarts: &mut u64,
    warnings: &mut Vec<String>,
) -> Result<Vec<SampleOutput>, TrainError> {
    let mut refs = Vec::with_capacity(handles.len());
    for (h, at) in handles.iter().zip(synced_at.iter_mut()) {
        let n = h.num_restarts();
        let send = weights_changed || *at != Some(n);
        let a = SampleArgs {
            weights: send.then(|| weights.clone()),
            filter: filter.cloned(),
            steps,
        };
        *at = Some(n);
        refs.push(h.call::<_, Result<SampleOutput, String>>("sample", &a));
    }
    let mut out = Vec::with_capacity(refs.len());
    for (i, r) in refs.into_iter().enumerate() {
        let w = i + 1;
        let failure = match r
            .map_err(|e| e.to_string())
            .and_then(|r| r.get().map_err(|e| e.to_string()))
        {
            Ok(Ok(o)) => {
                out.push(o);
                continue;
            }
            Ok(Err(e)) | Err(e) => e,
        };
        if handles[i].is_dead() {
            return Err(TrainError::Runner {
                iteration,
                message: format!(
                    "EnvRunner-{w} failed ({failure}) and cannot be rebuilt (restart_failed_env_runners, max_num_env_runner_restarts)"
                ),
            });
        }
        *restarts += 1;
        // Whatever it holds now, it gets the weights with its next call.
        synced_at[i] = None;
        warnings.push(format!(
            "iteration {iteration}: EnvRunner-{w} failed ({failure}); it is rebuilt on a live node, the iteration goes on without its samples"
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
/// (than the cluster's live nodes have, `on_cluster`) or the learner, or more memory than is
/// available. Runs before anything large is allocated.
pub fn check_resources(
    cfg: &AlgorithmConfig,
    spec: &ModuleSpec,
    on_cluster: bool,
    cpus: f64,
    learner_cpus: f64,
    available_memory: Option<u64>,
) -> Result<(), TrainError> {
    let need = cfg.num_env_runners as f64 * cfg.num_cpus_per_env_runner;
    // Fixed point, as the runtime counts (1/10,000 of a CPU).
    if (need * 1e4).round() > (cpus * 1e4).round() {
        let have = if on_cluster {
            "the cluster's live nodes have"
        } else {
            "this machine has"
        };
        return Err(TrainError::Resources(format!(
            "num_env_runners: {} env runners x num_cpus_per_env_runner: {} need {} CPUs, but {have} {cpus}; lower num_env_runners (or --num-env-runners){}",
            cfg.num_env_runners,
            crate::config::fmt_num(cfg.num_cpus_per_env_runner),
            crate::config::fmt_num(need),
            fraction_hint(cpus, cfg.num_env_runners)
        )));
    }
    // The learner holds no CPUs of its own (as a local learner in Ray's build_algo): it
    // borrows the runners' cores while they wait, so its threads are bounded by the machine.
    if let Some(n) = cfg.num_cpus_per_learner
        && n as f64 > learner_cpus
    {
        return Err(TrainError::Resources(format!(
            "num_cpus_per_learner: {n} asks for {n} learner threads, but this machine has {learner_cpus} CPUs; lower num_cpus_per_learner (at most {learner_cpus}) or use \"auto\""
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
