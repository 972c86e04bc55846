//! Searchers: where the next trial's config comes from when it depends on the results so far
//! (Ray Tune's `Searcher`), a Tree-structured Parzen Estimator written here (the default of
//! Optuna and HyperOpt), and Ray's `ConcurrencyLimiter`.
//!
//! Without a searcher, Tune makes every variant of the space up front (Ray's basic variant
//! generator: grids × `num_samples`, random domains drawn). With one, `num_samples` is the
//! number of trials and each is asked for when a trial can start.

use std::collections::{HashMap, HashSet};

use serde_json::Value;

use crate::scheduler::{adopt, need_metric};
use crate::space::{Domain, Rng, Space};
use crate::trainable::Metrics;
use crate::{Mode, TuneError};

/// A searcher's answer when a trial could start.
#[derive(Debug, Clone, PartialEq)]
pub enum Suggestion {
    /// Start a trial with this config.
    Config(Value),
    /// Not now: ask again when a trial has ended.
    Wait,
    /// No more trials.
    Done,
}

/// Suggests configs from the results of the trials so far.
pub trait Searcher: Send + std::fmt::Debug {
    /// Takes the experiment's metric and mode where the searcher was given none.
    fn set_search_properties(&mut self, _metric: Option<&str>, _mode: Option<Mode>) {}

    /// Checks the space (and the searcher's settings) before any trial: `num_samples` is how
    /// many trials to suggest in all, `seed` seeds the draws.
    fn setup(&mut self, space: &Space, num_samples: usize, seed: u64) -> Result<(), TuneError>;

    /// The config of trial `trial` (numbered from 0 in the order suggested).
    fn suggest(&mut self, trial: usize) -> Suggestion;

    /// Trial `trial` ended with `last` as its last result (`None`: it reported nothing), or
    /// failed (`error`).
    fn on_trial_complete(&mut self, trial: usize, last: Option<&Metrics>, error: bool);

    /// A restored experiment had already made these trials, in order (config, last result,
    /// whether it has ended): count them, and learn from the ended ones.
    fn restore(&mut self, made: &[(Value, Option<Metrics>, bool)]);
}

/// Ray's `ConcurrencyLimiter`: at most `max` of the searcher's trials running at once (a
/// model-based searcher learns more from each trial when fewer run blind at once).
#[derive(Debug)]
pub struct ConcurrencyLimiter<S> {
    inner: S,
    max: usize,
    live: HashSet<usize>,
}

impl<S: Searcher> ConcurrencyLimiter<S> {
    /// `searcher`, with at most `max_concurrent` of its trials live at once.
    pub fn new(searcher: S, max_concurrent: usize) -> Self {
        ConcurrencyLimiter {
            inner: searcher,
            max: max_concurrent,
            live: HashSet::new(),
        }
    }
}

impl<S: Searcher> Searcher for ConcurrencyLimiter<S> {
    fn set_search_properties(&mut self, metric: Option<&str>, mode: Option<Mode>) {
        self.inner.set_search_properties(metric, mode);
    }

    fn setup(&mut self, space: &Space, num_samples: usize, seed: u64) -> Result<(), TuneError> {
        if self.max == 0 {
            return Err(TuneError::Config(
                "ConcurrencyLimiter: max_concurrent must be >= 1".into(),
            ));
        }
        self.inner.setup(space, num_samples, seed)
    }

    fn suggest(&mut self, trial: usize) -> Suggestion {
        if self.live.len() >= self.max {
            return Suggestion::Wait;
        }
        let s = self.inner.suggest(trial);
        if matches!(s, Suggestion::Config(_)) {
            self.live.insert(trial);
        }
        s
    }

    fn on_trial_complete(&mut self, trial: usize, last: Option<&Metrics>, error: bool) {
        self.live.remove(&trial);
        self.inner.on_trial_complete(trial, last, error);
    }

    fn restore(&mut self, made: &[(Value, Option<Metrics>, bool)]) {
        // The restored trials that have not ended are live again.
        self.live = made
            .iter()
            .enumerate()
            .filter(|(_, (_, _, ended))| !ended)
            .map(|(i, _)| i)
            .collect();
        self.inner.restore(made);
    }
}

/// One searched dimension, as the estimator sees it: a number in `[low, high]` (the log of
/// the value for log domains, the index of the multiple for `qrandint`), or a category.
#[derive(Debug, Clone)]
enum Dim {
    Num { low: f64, high: f64 },
    Cat(usize),
}

fn dim_of(d: &Domain) -> Dim {
    match *d {
        Domain::Choice(ref v) => Dim::Cat(v.len()),
        Domain::Uniform { low, high } | Domain::QUniform { low, high, .. } => {
            Dim::Num { low, high }
        }
        Domain::LogUniform { low, high } | Domain::QLogUniform { low, high, .. } => Dim::Num {
            low: low.ln(),
            high: high.ln(),
        },
        // Integers own the unit interval around them.
        Domain::RandInt { low, high } => Dim::Num {
            low: low as f64 - 0.5,
            high: high as f64 - 0.5,
        },
        Domain::QRandInt { low, high, q } => Dim::Num {
            low: (low as f64 / q as f64).ceil() - 0.5,
            high: (high as f64 / q as f64).floor() + 0.5,
        },
        // The normal's mass, to four standard deviations.
        Domain::RandN { mean, sd } => Dim::Num {
            low: mean - 4.0 * sd,
            high: mean + 4.0 * sd,
        },
    }
}

/// The config value of an estimator point `x` of domain `d`.
fn value_of(d: &Domain, x: f64) -> Value {
    let round_to = |x: f64, q: f64| (x / q).round() * q;
    match *d {
        Domain::Choice(ref v) => v[(x as usize).min(v.len() - 1)].clone(),
        Domain::Uniform { .. } | Domain::RandN { .. } => Value::from(x),
        Domain::QUniform { q, .. } => Value::from(round_to(x, q)),
        Domain::LogUniform { .. } => Value::from(x.exp()),
        Domain::QLogUniform { q, .. } => Value::from(round_to(x.exp(), q)),
        Domain::RandInt { low, high } => Value::from((x.round() as i64).clamp(low, high - 1)),
        Domain::QRandInt { low, high, q } => {
            let first = (low as f64 / q as f64).ceil() as i64;
            let last = (high as f64 / q as f64).floor() as i64;
            Value::from((x.round() as i64).clamp(first, last) * q)
        }
    }
}

/// The estimator point of a config value (the inverse of [`value_of`]), if it is one.
fn point_of(d: &Domain, v: &Value) -> Option<f64> {
    match *d {
        Domain::Choice(ref c) => c.iter().position(|x| x == v).map(|i| i as f64),
        Domain::LogUniform { .. } | Domain::QLogUniform { .. } => {
            v.as_f64().filter(|x| *x > 0.0).map(f64::ln)
        }
        Domain::QRandInt { q, .. } => v.as_f64().map(|x| x / q as f64),
        _ => v.as_f64(),
    }
}

fn get<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    key.split('.').try_fold(v, |cur, k| match cur {
        Value::Array(a) => k.parse::<usize>().ok().and_then(|i| a.get(i)),
        _ => cur.get(k),
    })
}

/// Tree-structured Parzen Estimator (Bergstra et al. 2011; Optuna's `TPESampler` defaults):
/// the first `n_startup_trials` draw at random; after that the ended trials are split into
/// the best `min(ceil(0.1 n), 25)` and the rest, each dimension gets a Parzen estimator (a
/// truncated Gaussian mixture with a prior, or category weights) over either group, and of
/// `n_ei_candidates` draws from the good group's the one with the highest ratio
/// `l(x) / g(x)` is suggested. Dimensions are independent, as Optuna's default.
///
/// Searches the space's random domains (`uniform`, `loguniform`, `randint`, `choice`, ...,
/// `sample_from` resolved after them); `grid_search` is refused, as Ray's HyperOpt and Optuna
/// searchers refuse it.
#[derive(Debug)]
pub struct Tpe {
    metric: Option<String>,
    mode: Option<Mode>,
    n_startup_trials: usize,
    n_ei_candidates: usize,
    space: Option<Space>,
    domains: Vec<(String, Domain)>,
    total: usize,
    made: usize,
    seed: u64,
    rng: Rng,
    /// Configs suggested and not yet ended, by trial.
    running: HashMap<usize, Value>,
    /// Ended trials: their points and score (higher is better).
    observed: Vec<(Vec<f64>, f64)>,
}

impl Default for Tpe {
    fn default() -> Self {
        Tpe {
            metric: None,
            mode: None,
            n_startup_trials: 10,
            n_ei_candidates: 24,
            space: None,
            domains: Vec::new(),
            total: 0,
            made: 0,
            seed: 0,
            rng: Rng::new(0),
            running: HashMap::new(),
            observed: Vec::new(),
        }
    }
}

impl Tpe {
    /// TPE with Optuna's defaults (10 random trials first, 24 candidates).
    pub fn new() -> Self {
        Tpe::default()
    }

    /// The metric to optimise (default: the experiment's).
    pub fn metric(mut self, metric: &str) -> Self {
        self.metric = Some(metric.into());
        self
    }

    /// Whether higher or lower is better (default: the experiment's).
    pub fn mode(mut self, mode: Mode) -> Self {
        self.mode = Some(mode);
        self
    }

    /// Trials drawn at random before the model is used.
    pub fn n_startup_trials(mut self, n: usize) -> Self {
        self.n_startup_trials = n;
        self
    }

    /// Candidates drawn from the good group's estimator per suggestion.
    pub fn n_ei_candidates(mut self, n: usize) -> Self {
        self.n_ei_candidates = n;
        self
    }

    fn points_of(&self, config: &Value) -> Option<Vec<f64>> {
        self.domains
            .iter()
            .map(|(k, d)| get(config, k).and_then(|v| point_of(d, v)))
            .collect()
    }

    fn score(&self, last: Option<&Metrics>) -> Option<f64> {
        let v = last?.get(self.metric.as_deref()?)?.as_f64()?;
        if v.is_nan() {
            return None;
        }
        Some(match self.mode? {
            Mode::Max => v,
            Mode::Min => -v,
        })
    }

    /// The model's pick for dimension `i`.
    fn pick(&mut self, i: usize, good: &[f64], bad: &[f64]) -> f64 {
        let dim = dim_of(&self.domains[i].1);
        let (l, g) = (Parzen::fit(&dim, good), Parzen::fit(&dim, bad));
        let mut best = (f64::NEG_INFINITY, 0.0);
        for _ in 0..self.n_ei_candidates.max(1) {
            let x = l.sample(&mut self.rng);
            let ratio = l.log_pdf(x) - g.log_pdf(x);
            if ratio > best.0 {
                best = (ratio, x);
            }
        }
        best.1
    }
}

impl Searcher for Tpe {
    fn set_search_properties(&mut self, metric: Option<&str>, mode: Option<Mode>) {
        adopt((&mut self.metric, &mut self.mode), metric, mode);
    }

    fn setup(&mut self, space: &Space, num_samples: usize, seed: u64) -> Result<(), TuneError> {
        need_metric("TPE", &self.metric, &self.mode)?;
        space.validate()?;
        if let Some((key, _)) = space.grids().first() {
            return Err(TuneError::Space {
                key: key.clone(),
                problem: "grid_search cannot be searched by TPE: use choice([...])".into(),
            });
        }
        if num_samples == 0 {
            return Err(TuneError::Config("num_samples must be >= 1".into()));
        }
        self.domains = space.domains();
        self.space = Some(space.clone());
        self.total = num_samples;
        self.seed = seed;
        self.rng = Rng::new(seed);
        Ok(())
    }

    fn suggest(&mut self, trial: usize) -> Suggestion {
        let Some(space) = self.space.clone() else {
            return Suggestion::Done;
        };
        if self.made >= self.total {
            return Suggestion::Done;
        }
        self.made += 1;
        let mut fixed = HashMap::new();
        if self.observed.len() >= self.n_startup_trials.max(1) && !self.domains.is_empty() {
            let mut order: Vec<usize> = (0..self.observed.len()).collect();
            order.sort_by(|&a, &b| self.observed[b].1.total_cmp(&self.observed[a].1));
            let n_good = (self.observed.len() as f64 * 0.1).ceil().clamp(1.0, 25.0) as usize;
            for i in 0..self.domains.len() {
                let col = |ids: &[usize]| -> Vec<f64> {
                    ids.iter().map(|&j| self.observed[j].0[i]).collect()
                };
                let (good, bad) = (col(&order[..n_good]), col(&order[n_good..]));
                let x = self.pick(i, &good, &bad);
                let (k, d) = &self.domains[i];
                fixed.insert(k.clone(), value_of(d, x));
            }
        }
        let config = space.resolve_with(&[], &fixed, &mut self.rng);
        self.running.insert(trial, config.clone());
        Suggestion::Config(config)
    }

    fn on_trial_complete(&mut self, trial: usize, last: Option<&Metrics>, _error: bool) {
        let Some(config) = self.running.remove(&trial) else {
            return;
        };
        if let (Some(p), Some(s)) = (self.points_of(&config), self.score(last)) {
            self.observed.push((p, s));
        }
    }

    fn restore(&mut self, made: &[(Value, Option<Metrics>, bool)]) {
        self.made = made.len();
        // Draws on from where a run that made these trials would be, not from the start.
        self.rng = Rng::new(self.seed ^ (made.len() as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        for (i, (config, last, ended)) in made.iter().enumerate() {
            if !ended {
                // Still to finish: its result counts when it ends.
                self.running.insert(i, config.clone());
            } else if let (Some(p), Some(s)) = (self.points_of(config), self.score(last.as_ref())) {
                self.observed.push((p, s));
            }
        }
    }
}

/// A one-dimensional Parzen estimator.
enum Parzen {
    /// Truncated Gaussians on `[low, high]`: (weight, mean, sd) each.
    Num {
        low: f64,
        high: f64,
        parts: Vec<(f64, f64, f64)>,
    },
    /// Category probabilities.
    Cat(Vec<f64>),
}

impl Parzen {
    /// Optuna's estimator: a Gaussian at each observation and a prior (the middle of the
    /// range, as wide as it), each as wide as the larger gap to its neighbours, clipped to
    /// `[range / min(100, 1 + n), range]`; equal weights.
    fn fit(dim: &Dim, xs: &[f64]) -> Parzen {
        match *dim {
            Dim::Cat(k) => {
                let mut w = vec![1.0 / k as f64; k];
                for &x in xs {
                    if let Some(c) = w.get_mut(x as usize) {
                        *c += 1.0;
                    }
                }
                let sum: f64 = w.iter().sum();
                Parzen::Cat(w.into_iter().map(|c| c / sum).collect())
            }
            Dim::Num { low, high } => {
                let range = high - low;
                let prior = (low + high) / 2.0;
                let mut mus: Vec<f64> = xs.iter().map(|x| x.clamp(low, high)).collect();
                mus.push(prior);
                mus.sort_by(f64::total_cmp);
                let n = mus.len();
                let min_sd = range / (100.0f64).min(1.0 + n as f64);
                let mut parts: Vec<(f64, f64, f64)> = (0..n)
                    .map(|i| {
                        let left = if i > 0 {
                            mus[i] - mus[i - 1]
                        } else {
                            mus[i] - low
                        };
                        let right = if i + 1 < n {
                            mus[i + 1] - mus[i]
                        } else {
                            high - mus[i]
                        };
                        (1.0 / n as f64, mus[i], left.max(right).clamp(min_sd, range))
                    })
                    .collect();
                // The prior keeps its full width.
                if let Some(p) = parts.iter_mut().find(|p| p.1 == prior) {
                    p.2 = range;
                }
                Parzen::Num { low, high, parts }
            }
        }
    }

    fn sample(&self, rng: &mut Rng) -> f64 {
        match self {
            Parzen::Cat(p) => {
                let mut u = rng.random();
                for (i, &pi) in p.iter().enumerate() {
                    if u < pi {
                        return i as f64;
                    }
                    u -= pi;
                }
                (p.len() - 1) as f64
            }
            Parzen::Num { low, high, parts } => {
                let mut u = rng.random();
                let mut part = parts[parts.len() - 1];
                for &p in parts {
                    if u < p.0 {
                        part = p;
                        break;
                    }
                    u -= p.0;
                }
                for _ in 0..100 {
                    let x = part.1 + part.2 * rng.normal();
                    if (*low..=*high).contains(&x) {
                        return x;
                    }
                }
                part.1.clamp(*low, *high)
            }
        }
    }

    fn log_pdf(&self, x: f64) -> f64 {
        match self {
            Parzen::Cat(p) => p.get(x as usize).copied().unwrap_or(0.0).max(1e-300).ln(),
            Parzen::Num { low, high, parts } => {
                let mut sum = 0.0;
                for &(w, mu, sd) in parts {
                    let mass = phi((high - mu) / sd) - phi((low - mu) / sd);
                    let z = (x - mu) / sd;
                    let pdf = (-0.5 * z * z).exp() / (sd * (std::f64::consts::TAU).sqrt());
                    sum += w * pdf / mass.max(1e-12);
                }
                sum.max(1e-300).ln()
            }
        }
    }
}

/// The standard normal's distribution function.
fn phi(z: f64) -> f64 {
    0.5 * (1.0 + erf(z / std::f64::consts::SQRT_2))
}

/// The error function (Abramowitz and Stegun 7.1.26, error below 1.5e-7).
fn erf(x: f64) -> f64 {
    let t = 1.0 / (1.0 + 0.327_591_1 * x.abs());
    let y = 1.0
        - (((((1.061_405_429 * t - 1.453_152_027) * t) + 1.421_413_741) * t - 0.284_496_736) * t
            + 0.254_829_592)
            * t
            * (-x * x).exp();
    if x >= 0.0 { y } else { -y }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{choice, loguniform, randint, uniform};
    use serde_json::json;

    #[test]
    fn erf_matches_known_values() {
        for (x, e) in [
            (0.0, 0.0),
            (0.5, 0.520_499_877_8),
            (1.0, 0.842_700_792_9),
            (-2.0, -0.995_322_265),
        ] {
            assert!((erf(x) - e).abs() < 2e-7, "erf({x}) = {} not {e}", erf(x));
        }
    }

    #[test]
    fn points_and_values_round_trip_every_domain() {
        let domains = [
            Domain::Uniform {
                low: -1.0,
                high: 2.0,
            },
            Domain::LogUniform {
                low: 1e-4,
                high: 1e-1,
            },
            Domain::RandInt { low: 2, high: 9 },
            Domain::QRandInt {
                low: 0,
                high: 100,
                q: 20,
            },
            Domain::Choice(vec![json!("a"), json!(3), json!([1])]),
        ];
        let mut rng = Rng::new(3);
        for d in &domains {
            for _ in 0..200 {
                let v = d.sample(&mut rng);
                let x = point_of(d, &v).unwrap();
                assert_eq!(value_of(d, x), v, "{d:?}");
                let Dim::Num { low, high } = dim_of(d) else {
                    continue;
                };
                assert!(x >= low && x <= high, "{d:?}: {x} outside [{low}, {high}]");
            }
        }
    }

    #[test]
    fn tpe_learns_where_the_optimum_is() {
        // score = -(x - 0.8)^2 - (log10(lr) + 2)^2, best at x = 0.8, lr = 0.01; the choice
        // "good" adds 1. After 10 random trials, TPE's suggestions concentrate near the
        // optimum: their mean distance to it is well below the random trials'.
        let space = Space::new()
            .set("x", uniform(0.0, 1.0))
            .set("lr", loguniform(1e-5, 1.0))
            .set("kind", choice(["bad", "good", "worse"]))
            .set("n", randint(0, 10));
        let score = |c: &Value| {
            -(c["x"].as_f64().unwrap() - 0.8).powi(2)
                - (c["lr"].as_f64().unwrap().log10() + 2.0).powi(2) / 25.0
                + if c["kind"] == "good" { 1.0 } else { 0.0 }
        };
        let (mut random, mut model) = (Vec::new(), Vec::new());
        for seed in 0..5 {
            let mut t = Tpe::new().metric("s").mode(Mode::Max);
            t.setup(&space, 60, seed).unwrap();
            for i in 0..60 {
                let Suggestion::Config(c) = t.suggest(i) else {
                    panic!()
                };
                let s = score(&c);
                if i < 10 {
                    random.push(s)
                } else if i >= 30 {
                    model.push(s)
                }
                let m = json!({"s": s}).as_object().unwrap().clone();
                t.on_trial_complete(i, Some(&m), false);
            }
            assert_eq!(t.suggest(60), Suggestion::Done);
        }
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        assert!(
            mean(&model) > mean(&random) + 0.3,
            "TPE's later trials average {} against the random ones' {}",
            mean(&model),
            mean(&random)
        );
    }

    #[test]
    fn tpe_refuses_grids_and_needs_a_metric() {
        let grid = Space::new().set("x", crate::grid_search([1, 2]));
        let e = Tpe::new()
            .metric("s")
            .mode(Mode::Max)
            .setup(&grid, 4, 0)
            .unwrap_err();
        assert!(e.to_string().contains("`x`"), "{e}");
        let e = Tpe::new()
            .setup(&Space::new().set("x", uniform(0.0, 1.0)), 4, 0)
            .unwrap_err();
        assert!(e.to_string().contains("metric"), "{e}");
    }

    #[test]
    fn the_limiter_waits_while_its_trials_run() {
        let space = Space::new().set("x", uniform(0.0, 1.0));
        let mut l = ConcurrencyLimiter::new(Tpe::new().metric("s").mode(Mode::Max), 2);
        l.setup(&space, 5, 0).unwrap();
        assert!(matches!(l.suggest(0), Suggestion::Config(_)));
        assert!(matches!(l.suggest(1), Suggestion::Config(_)));
        assert_eq!(l.suggest(2), Suggestion::Wait);
        l.on_trial_complete(0, None, true);
        assert!(matches!(l.suggest(2), Suggestion::Config(_)));
    }
}
