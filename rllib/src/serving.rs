//! `rllib serve <checkpoint>`: a checkpoint's policy as a Serve deployment. `POST /` (or
//! `/<experiment>`) with `{"observation": [...]}` answers `{"action": a}`, with
//! `{"observations": [[...], ...]}` answers `{"actions": [...]}`; `"explore": true` samples
//! instead of taking the greedy action. Observations go through the checkpoint's
//! `MeanStdFilter` (frozen) exactly as `rllib evaluate` does, and the requests of a batch go
//! through the policy in one forward pass (greedy and exploring rows each in one).

use std::path::Path;
use std::sync::Arc;

use algorithms::filter::{MeanStdFilter, RunningStat};
use algorithms::nn::Weights;
use algorithms::policy::{Actions, Policy};
use algorithms::rl_module::ModuleSpec;
use envs::NpRandom;
use serde_json::{Value, json};
use serve::{BatchHandler, Deployment, Request, Response};

use crate::checkpoint;
use algorithms::AlgorithmConfig;

/// At most this many observations in one request.
pub const MAX_OBSERVATIONS_PER_REQUEST: usize = 4096;

/// What every replica shares: the checkpoint's policy and filter, and its description.
#[derive(Debug)]
pub struct ServedPolicy {
    cfg: AlgorithmConfig,
    spec: ModuleSpec,
    weights: Weights,
    filter: Option<RunningStat>,
    obs_dim: usize,
    obs_space: String,
    /// The experiment's name: `/<experiment>` answers as `/` does.
    pub experiment: String,
    describe: Value,
}

impl ServedPolicy {
    /// Loads the checkpoint at `dir` (checked against its env) for serving.
    pub fn load(dir: &Path) -> Result<ServedPolicy, String> {
        let mut ck = checkpoint::load(dir).map_err(|e| e.to_string())?;
        let env = ck.env.clone();
        ck.check_env(&env).map_err(|e| e.to_string())?;
        let shown = dir.display().to_string();
        let cfg = crate::config::checkpoint_config(&shown, &ck.algorithm, &ck.config)
            .map_err(|e| e.to_string())?;
        let weights = ck.spec.inference_part(ck.weights())?;
        // Build one policy now, so that a checkpoint that cannot act fails here, not per replica.
        ck.spec.policy(&weights, &cfg)?;
        let experiment = ck.experiment.clone().unwrap_or_else(|| {
            dir.parent()
                .and_then(Path::parent)
                .and_then(Path::file_name)
                .map_or_else(
                    || "policy".to_string(),
                    |n| n.to_string_lossy().into_owned(),
                )
        });
        let describe = json!({
            "algorithm": ck.algorithm,
            "env": ck.env,
            "observation_space": ck.observation_space,
            "action_space": ck.action_space,
            "observation_filter": if ck.filter().is_some() { "MeanStdFilter" } else { "NoFilter" },
            "checkpoint": shown,
            "experiment": experiment,
            "iteration": ck.counters().iteration,
            "request": {"observation": format!("{} numbers", ck.spec.obs_dim()), "explore": "optional, default false"},
        });
        Ok(ServedPolicy {
            obs_dim: ck.spec.obs_dim(),
            obs_space: ck.observation_space.clone(),
            filter: ck.filter().cloned(),
            cfg,
            weights,
            spec: ck.spec,
            experiment,
            describe,
        })
    }

    /// The deployment: named after the experiment, at `/`, batched.
    pub fn deployment(self: &Arc<Self>, seed: u64) -> Deployment {
        let me = Arc::clone(self);
        let replicas = std::sync::atomic::AtomicU64::new(0);
        Deployment::batched(&self.experiment.replace('/', "_"), move || {
            let n = replicas.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            PolicyReplica::new(Arc::clone(&me), seed.wrapping_add(n))
        })
        .route_prefix("/")
    }
}

/// One replica: its own policy (scratch buffers), filter copy and sampling generator.
pub struct PolicyReplica {
    served: Arc<ServedPolicy>,
    policy: Box<dyn Policy>,
    filter: Option<MeanStdFilter>,
    rng: NpRandom,
    actions: Actions,
    /// One request's filtered observations, before they join their group.
    scratch: Vec<f32>,
}

impl std::fmt::Debug for PolicyReplica {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PolicyReplica({})", self.served.experiment)
    }
}

impl PolicyReplica {
    fn new(served: Arc<ServedPolicy>, seed: u64) -> PolicyReplica {
        let policy = served
            .spec
            .policy(&served.weights, &served.cfg)
            .expect("checked when the checkpoint was loaded");
        let filter = served.filter.as_ref().map(|s| {
            let mut f = MeanStdFilter::new(served.obs_dim);
            f.sync(s);
            f
        });
        PolicyReplica {
            served,
            policy,
            filter,
            rng: NpRandom::from_seed(seed),
            actions: Actions::default(),
            scratch: Vec::new(),
        }
    }

    /// Runs the policy on `rows` filtered observations; the env actions as JSON, one per row.
    fn act(&mut self, obs: &[f32], rows: usize, explore: bool) -> Vec<Value> {
        if rows == 0 {
            return Vec::new();
        }
        if explore {
            self.policy
                .explore(obs, rows, u64::MAX / 2, &mut self.rng, &mut self.actions);
        } else {
            self.policy.greedy(obs, rows, &mut self.actions);
        }
        if self.policy.discrete() {
            self.actions.env_discrete[..rows]
                .iter()
                .map(|a| json!(a))
                .collect()
        } else {
            let d = self.policy.action_dim();
            self.actions.env_continuous[..rows * d]
                .chunks(d)
                .map(|a| json!(a))
                .collect()
        }
    }
}

/// A request's observations, parsed and filtered.
struct Parsed {
    rows: usize,
    single: bool,
    explore: bool,
}

/// An error response for this request (the status and what was expected).
type Reject = Response;

fn unprocessable(message: String) -> Reject {
    Response::error(422, &message)
}

impl PolicyReplica {
    /// Checks the request's body and appends its filtered observations to `out`.
    fn parse(&mut self, req: &Request, out: &mut Vec<f32>) -> Result<Parsed, Reject> {
        // The common case, `{"observation": [numbers]}` of the right length, without building
        // a JSON tree; anything else takes the general path, which says what is wrong.
        if let Ok(fast) = serde_json::from_slice::<OneObservation>(&req.body)
            && fast.observation.len() == self.served.obs_dim
            && fast.observation.iter().all(|x| x.is_finite())
        {
            self.push(&fast.observation, out);
            return Ok(Parsed {
                rows: 1,
                single: true,
                explore: fast.explore,
            });
        }
        let body: Value = serde_json::from_slice(&req.body)
            .map_err(|e| Response::error(400, &format!("the body is not valid JSON: {e}")))?;
        let Value::Object(map) = &body else {
            return Err(unprocessable(
                "expected a JSON object: {\"observation\": [...]} or {\"observations\": [[...], ...]}".into(),
            ));
        };
        let explore = match map.get("explore") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(other) => {
                return Err(unprocessable(format!(
                    "\"explore\": expected true or false, got {other}"
                )));
            }
        };
        let (list, single): (Vec<&Value>, bool) = match (
            map.get("observation"),
            map.get("observations"),
        ) {
            (Some(o), None) => (vec![o], true),
            (None, Some(Value::Array(os))) => (os.iter().collect(), false),
            (None, Some(other)) => {
                return Err(unprocessable(format!(
                    "\"observations\": expected a list of observations, got {}",
                    kind(other)
                )));
            }
            _ => {
                return Err(unprocessable(
                    "expected exactly one of \"observation\": [...] or \"observations\": [[...], ...]".into(),
                ));
            }
        };
        if list.len() > MAX_OBSERVATIONS_PER_REQUEST {
            return Err(Response::error(
                413,
                &format!(
                    "{} observations in one request; at most {MAX_OBSERVATIONS_PER_REQUEST}",
                    list.len()
                ),
            ));
        }
        let d = self.served.obs_dim;
        let start = out.len();
        let mut raw = Vec::with_capacity(d);
        for (i, o) in list.iter().enumerate() {
            let at = if single {
                "observation".to_string()
            } else {
                format!("observations[{i}]")
            };
            raw.clear();
            flatten(o, &at, &mut raw).map_err(|e| {
                out.truncate(start);
                unprocessable(e)
            })?;
            if raw.len() != d {
                out.truncate(start);
                return Err(unprocessable(format!(
                    "{at}: expected {d} numbers (observation space {}), got {}",
                    self.served.obs_space,
                    raw.len()
                )));
            }
            self.push(&raw, out);
        }
        Ok(Parsed {
            rows: list.len(),
            single,
            explore,
        })
    }
}

impl PolicyReplica {
    /// Appends `raw` through the filter (frozen) to `out`.
    fn push(&mut self, raw: &[f32], out: &mut Vec<f32>) {
        let at = out.len();
        out.resize(at + raw.len(), 0.0);
        match self.filter.as_mut() {
            Some(f) => f.apply(raw, false, &mut out[at..]),
            None => out[at..].copy_from_slice(raw),
        }
    }
}

/// `{"observation": [numbers], "explore": bool}` and nothing else.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct OneObservation {
    observation: Vec<f32>,
    #[serde(default)]
    explore: bool,
}

/// What a JSON value is, for messages.
fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// The numbers of `v` (a number, or nested lists of numbers) in row-major order, as finite
/// 32-bit floats.
fn flatten(v: &Value, at: &str, out: &mut Vec<f32>) -> Result<(), String> {
    match v {
        Value::Number(n) => {
            let x = n.as_f64().unwrap_or(f64::NAN) as f32;
            if !x.is_finite() {
                return Err(format!("{at}: {n} is not a finite 32-bit float"));
            }
            out.push(x);
            Ok(())
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                flatten(item, &format!("{at}[{i}]"), out)?;
            }
            Ok(())
        }
        other => Err(format!(
            "{at}: expected a number, got {} ({other})",
            kind(other)
        )),
    }
}

impl BatchHandler for PolicyReplica {
    fn call_batch(&mut self, requests: Vec<Request>) -> Vec<Response> {
        let mut out: Vec<Option<Response>> = vec![None; requests.len()];
        // Greedy and exploring rows, each one forward pass; (request, rows, single) in order.
        let mut greedy = (Vec::new(), Vec::new());
        let mut exploring = (Vec::new(), Vec::new());
        for (i, req) in requests.iter().enumerate() {
            let path = req.path.trim_end_matches('/');
            let ours =
                path.is_empty() || path.strip_prefix('/') == Some(self.served.experiment.as_str());
            if !ours {
                out[i] = Some(Response::error(
                    404,
                    &format!(
                        "no policy at {}; POST / or /{}",
                        req.path, self.served.experiment
                    ),
                ));
                continue;
            }
            match req.method.as_str() {
                "GET" => out[i] = Some(Response::json(&self.served.describe)),
                "POST" => {
                    let mut rows = std::mem::take(&mut self.scratch);
                    rows.clear();
                    match self.parse(req, &mut rows) {
                        Ok(p) => {
                            let group = if p.explore {
                                &mut exploring
                            } else {
                                &mut greedy
                            };
                            group.0.extend_from_slice(&rows);
                            group.1.push((i, p.rows, p.single));
                        }
                        Err(r) => out[i] = Some(r),
                    }
                    self.scratch = rows;
                }
                m => {
                    out[i] = Some(Response::error(
                        405,
                        &format!("{m}: use GET (describe) or POST (act)"),
                    ))
                }
            }
        }
        for (explore, (obs, who)) in [(false, greedy), (true, exploring)] {
            let rows: usize = who.iter().map(|(_, r, _)| r).sum();
            let actions = self.act(&obs, rows, explore);
            let mut at = 0;
            for (i, n, single) in who {
                let mine = &actions[at..at + n];
                at += n;
                out[i] = Some(if single {
                    Response::bytes(format!("{{\"action\":{}}}", mine[0]), "application/json")
                } else {
                    Response::json(&json!({ "actions": mine }))
                });
            }
        }
        out.into_iter()
            .map(|r| r.unwrap_or_else(|| Response::error(500, "no answer")))
            .collect()
    }
}
