//! Population based training (Ray Tune's `PopulationBasedTraining`): every
//! `perturbation_interval`, a trial in the bottom `quantile_fraction` of the population clones
//! the latest checkpoint of a trial in the top fraction and goes on with that trial's config,
//! perturbed: each mutated key is drawn afresh with `resample_probability`, else moved to a
//! neighbouring value of its list or multiplied by 1.2 or 0.8.

use std::collections::HashMap;

use serde_json::Value;

use crate::scheduler::{Action, TrialScheduler};
use crate::space::{Domain, Rng};
use crate::trainable::Metrics;
use crate::{Mode, TuneError};

/// How one hyperparameter may change.
#[derive(Debug, Clone)]
pub enum Mutation {
    /// One of these values (moved to a neighbour, or drawn afresh).
    List(Vec<Value>),
    /// A distribution (scaled by 1.2 or 0.8, or drawn afresh).
    Domain(Domain),
}

/// Population based training.
#[derive(Debug, Clone)]
pub struct Pbt {
    time_attr: String,
    metric: Option<String>,
    mode: Option<Mode>,
    perturbation_interval: f64,
    mutations: Vec<(String, Mutation)>,
    quantile_fraction: f64,
    resample_probability: f64,
    rng: Rng,
    /// Per trial: its latest score (higher is better inside) and when it last perturbed.
    trials: HashMap<usize, (Option<f64>, f64)>,
}

impl Default for Pbt {
    fn default() -> Self {
        Pbt {
            time_attr: "training_iteration".into(),
            metric: None,
            mode: None,
            perturbation_interval: 60.0,
            mutations: Vec::new(),
            quantile_fraction: 0.25,
            resample_probability: 0.25,
            rng: Rng::new(0),
            trials: HashMap::new(),
        }
    }
}

impl Pbt {
    /// PBT with Ray's defaults (interval 60 of `training_iteration`, quantile 0.25, resample
    /// 0.25); give it mutations.
    pub fn new() -> Self {
        Pbt::default()
    }

    crate::scheduler::search_properties!();

    /// How much `time_attr` passes between perturbations of a trial.
    pub fn perturbation_interval(mut self, t: f64) -> Self {
        self.perturbation_interval = t;
        self
    }

    /// The perturbation interval.
    pub fn interval(&self) -> f64 {
        self.perturbation_interval
    }

    /// The result key the interval is measured in.
    pub fn time_key(&self) -> &str {
        &self.time_attr
    }

    /// A hyperparameter that may change (dotted key for nested configs).
    pub fn mutate(mut self, key: &str, m: Mutation) -> Self {
        self.mutations.push((key.to_string(), m));
        self
    }

    /// The bottom and top share of the population (at most 0.5).
    pub fn quantile_fraction(mut self, q: f64) -> Self {
        self.quantile_fraction = q;
        self
    }

    /// The chance a mutated key is drawn afresh rather than perturbed.
    pub fn resample_probability(mut self, p: f64) -> Self {
        self.resample_probability = p;
        self
    }

    /// Seed of the choices PBT makes.
    pub fn seed(mut self, seed: u64) -> Self {
        self.rng = Rng::new(seed);
        self
    }

    /// (bottom, top) trials by latest score, as Ray's `_quantiles`.
    fn quantiles(&self) -> (Vec<usize>, Vec<usize>) {
        let mut scored: Vec<(usize, f64)> = self
            .trials
            .iter()
            .filter_map(|(&t, &(s, _))| s.map(|s| (t, s)))
            .collect();
        if scored.len() <= 1 {
            return (Vec::new(), Vec::new());
        }
        scored.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
        let n = scored.len();
        let mut k = (n as f64 * self.quantile_fraction).ceil() as usize;
        if k > n / 2 {
            k = n / 2;
        }
        let ids: Vec<usize> = scored.into_iter().map(|(t, _)| t).collect();
        (ids[..k].to_vec(), ids[n - k..].to_vec())
    }
}

fn get<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    key.split('.').try_fold(v, |cur, k| cur.get(k))
}

fn set(v: &mut Value, key: &str, x: Value) {
    let mut cur = v;
    let parts: Vec<&str> = key.split('.').collect();
    for p in &parts[..parts.len() - 1] {
        if !cur.get(*p).is_some_and(Value::is_object) {
            cur[*p] = Value::Object(Default::default());
        }
        cur = &mut cur[*p];
    }
    cur[parts[parts.len() - 1]] = x;
}

impl TrialScheduler for Pbt {
    fn set_search_properties(&mut self, metric: Option<&str>, mode: Option<Mode>) {
        crate::scheduler::adopt((&mut self.metric, &mut self.mode), metric, mode);
    }

    fn validate(&self) -> Result<(), TuneError> {
        let bad = |p: String| Err(TuneError::Scheduler(format!("PBT: {p}")));
        crate::scheduler::need_metric("PBT", &self.metric, &self.mode)?;
        if self.mutations.is_empty() {
            return bad("needs at least one hyperparameter to mutate".into());
        }
        if !(self.perturbation_interval > 0.0 && self.perturbation_interval.is_finite()) {
            return bad(format!(
                "perturbation_interval {} must be > 0",
                self.perturbation_interval
            ));
        }
        if !(0.0..=0.5).contains(&self.quantile_fraction) {
            return bad(format!(
                "quantile_fraction {} must be in [0, 0.5]",
                self.quantile_fraction
            ));
        }
        if !(0.0..=1.0).contains(&self.resample_probability) {
            return bad(format!(
                "resample_probability {} must be in [0, 1]",
                self.resample_probability
            ));
        }
        for (k, m) in &self.mutations {
            match m {
                Mutation::List(l) if l.is_empty() => return bad(format!("{k}: an empty list")),
                Mutation::Domain(d) => d
                    .validate()
                    .map_err(|p| TuneError::Scheduler(format!("PBT: {k}: {p}")))?,
                Mutation::List(_) => {}
            }
        }
        Ok(())
    }

    fn on_result(&mut self, trial: usize, result: &Metrics) -> Action {
        let (Some(metric), Some(mode)) = (self.metric.clone(), self.mode) else {
            return Action::Continue;
        };
        let (Some(t), Some(v)) = (
            result.get(&self.time_attr).and_then(Value::as_f64),
            result.get(&metric).and_then(Value::as_f64),
        ) else {
            return Action::Continue;
        };
        let score = match mode {
            Mode::Max => v,
            Mode::Min => -v,
        };
        let entry = self.trials.entry(trial).or_insert((None, 0.0));
        entry.0 = Some(score);
        if t - entry.1 < self.perturbation_interval {
            return Action::Continue;
        }
        entry.1 = t;
        let (bottom, top) = self.quantiles();
        if bottom.contains(&trial) && !top.is_empty() {
            let source = top[self.rng.below(top.len() as u64) as usize];
            return Action::Exploit(source);
        }
        Action::Continue
    }

    fn on_complete(&mut self, trial: usize) {
        // A finished trial no longer competes (Ray removes it from the quantiles too).
        self.trials.remove(&trial);
    }

    fn explore(&mut self, config: &Value) -> Value {
        let mut out = config.clone();
        for (key, m) in self.mutations.clone() {
            let old = get(config, &key).cloned().unwrap_or(Value::Null);
            let resample = self.rng.random() < self.resample_probability;
            let new = match &m {
                Mutation::List(l) => match l.iter().position(|x| *x == old) {
                    Some(i) if !resample => {
                        let j = if self.rng.below(2) == 0 {
                            i.saturating_sub(1)
                        } else {
                            (i + 1).min(l.len() - 1)
                        };
                        l[j].clone()
                    }
                    _ => l[self.rng.below(l.len() as u64) as usize].clone(),
                },
                Mutation::Domain(d) => match old.as_f64() {
                    Some(x) if !resample => {
                        let f = if self.rng.below(2) == 0 { 1.2 } else { 0.8 };
                        if old.is_i64() || old.is_u64() {
                            Value::from((x * f) as i64)
                        } else {
                            Value::from(x * f)
                        }
                    }
                    _ => d.sample(&mut self.rng),
                },
            };
            set(&mut out, &key, new);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_bottom_quarter_clones_the_top_and_perturbs() {
        let mut p = Pbt::new()
            .metric("score")
            .mode(Mode::Max)
            .perturbation_interval(2.0)
            .mutate("lr", Mutation::List(vec![json!(1), json!(2), json!(3)]))
            .mutate(
                "m.c",
                Mutation::Domain(Domain::Uniform {
                    low: 0.0,
                    high: 1.0,
                }),
            )
            .resample_probability(0.0);
        let r = |t: f64, s: f64| {
            json!({"training_iteration": t, "score": s})
                .as_object()
                .unwrap()
                .clone()
        };
        // Four trials report at t = 1 (not yet an interval), then at t = 2.
        for (i, s) in [1.0, 2.0, 3.0, 4.0].iter().enumerate() {
            assert_eq!(p.on_result(i, &r(1.0, *s)), Action::Continue);
        }
        // ceil(4 × 0.25) = 1 trial in each quantile: trial 0 at the bottom, 3 at the top.
        assert_eq!(p.on_result(3, &r(2.0, 4.0)), Action::Continue);
        assert_eq!(p.on_result(0, &r(2.0, 1.0)), Action::Exploit(3));
        // Not again before another interval.
        assert_eq!(p.on_result(0, &r(3.0, 1.0)), Action::Continue);
        let c = p.explore(&json!({"lr": 2, "m": {"c": 0.5}, "keep": true}));
        assert!(c["lr"] == json!(1) || c["lr"] == json!(3), "{c}");
        let x = c["m"]["c"].as_f64().unwrap();
        assert!((x - 0.6).abs() < 1e-12 || (x - 0.4).abs() < 1e-12, "{c}");
        assert_eq!(c["keep"], json!(true));
    }
}
