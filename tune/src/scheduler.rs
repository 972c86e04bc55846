//! Trial schedulers: after each result, whether a trial goes on (Ray Tune's
//! `FIFOScheduler` and `ASHAScheduler`).

use std::collections::HashMap;

use serde_json::Value;

use crate::space::Rng;
use crate::trainable::Metrics;
use crate::{Mode, TuneError};

/// A scheduler's verdict on one result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Let the trial go on.
    Continue,
    /// Stop it now (it ends TERMINATED, not ERROR).
    Stop,
    /// Restart it from trial `.0`'s latest checkpoint with a config made by
    /// [`TrialScheduler::explore`] from that trial's (PBT's exploit and explore).
    Exploit(usize),
}

/// Decides after every result whether its trial goes on.
pub trait TrialScheduler: Send + std::fmt::Debug {
    /// Takes the experiment's metric and mode where the scheduler was given none.
    fn set_search_properties(&mut self, _metric: Option<&str>, _mode: Option<Mode>) {}

    /// Checks the settings before any trial starts.
    fn validate(&self) -> Result<(), TuneError> {
        Ok(())
    }

    /// The verdict on `result`, the latest of trial `trial`.
    fn on_result(&mut self, trial: usize, result: &Metrics) -> Action;

    /// Trial `trial` ended (finished, stopped or failed).
    fn on_complete(&mut self, _trial: usize) {}

    /// The config a trial exploiting another one continues with (made from that one's).
    fn explore(&mut self, config: &Value) -> Value {
        config.clone()
    }
}

/// Runs every trial to its end (Ray's default).
#[derive(Debug, Default, Clone)]
pub struct Fifo;

impl TrialScheduler for Fifo {
    fn on_result(&mut self, _trial: usize, _result: &Metrics) -> Action {
        Action::Continue
    }
}

/// Asynchronous successive halving (Ray's `ASHAScheduler` / `AsyncHyperBandScheduler`): rungs
/// at `grace_period × reduction_factor^k` of `time_attr`; a trial reaching a rung is stopped if
/// its metric is below the `1 − 1/reduction_factor` quantile of the trials recorded at that
/// rung before it; every trial stops at `max_t`.
#[derive(Debug, Clone)]
pub struct Asha {
    /// The result key that measures progress (default `training_iteration`).
    time_attr: String,
    /// The metric compared at each rung (default: the experiment's).
    metric: Option<String>,
    /// Whether higher or lower is better (default: the experiment's).
    mode: Option<Mode>,
    /// Trials stop at this much `time_attr` (default 100).
    max_t: f64,
    /// The first rung (default 1).
    grace_period: f64,
    /// How many trials one promotion is out of (default 4).
    reduction_factor: f64,
    /// Brackets of different first rungs (default 1).
    brackets: usize,
    /// Seed of the bracket a trial goes to, when there are several.
    seed: u64,
    state: Option<AshaState>,
}

#[derive(Debug, Clone)]
struct AshaState {
    brackets: Vec<Vec<(f64, HashMap<usize, f64>)>>,
    of_trial: HashMap<usize, usize>,
    rng: Rng,
}

impl Default for Asha {
    fn default() -> Self {
        Asha {
            time_attr: "training_iteration".into(),
            metric: None,
            mode: None,
            max_t: 100.0,
            grace_period: 1.0,
            reduction_factor: 4.0,
            brackets: 1,
            seed: 0,
            state: None,
        }
    }
}

/// numpy's default (linear) percentile of `values`, `q` in [0, 100].
pub(crate) fn percentile(values: &[f64], q: f64) -> Option<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let rank = q / 100.0 * (v.len() - 1) as f64;
    let lo = rank.floor() as usize;
    let hi = rank.ceil() as usize;
    Some(v[lo] + (v[hi] - v[lo]) * (rank - lo as f64))
}

/// The builder methods every scheduler with a metric has: `time_attr`, `metric`, `mode`.
macro_rules! search_properties {
    () => {
        /// The result key that measures progress (default `training_iteration`).
        pub fn time_attr(mut self, key: &str) -> Self {
            self.time_attr = key.to_string();
            self
        }

        /// The metric compared (default: the experiment's).
        pub fn metric(mut self, metric: &str) -> Self {
            self.metric = Some(metric.to_string());
            self
        }

        /// Whether higher or lower is better (default: the experiment's).
        pub fn mode(mut self, mode: Mode) -> Self {
            self.mode = Some(mode);
            self
        }
    };
}
pub(crate) use search_properties;

macro_rules! setter {
    ($(#[$doc:meta] $name:ident: $t:ty),* $(,)?) => {$(
        #[$doc]
        pub fn $name(mut self, v: $t) -> Self {
            self.$name = v;
            self
        }
    )*};
}

impl Asha {
    /// ASHA with Ray's defaults (`training_iteration`, max_t 100, grace 1, factor 4, 1 bracket).
    pub fn new() -> Self {
        Asha::default()
    }

    setter!(
        /// Trials stop at this much `time_attr`.
        max_t: f64,
        /// The first rung.
        grace_period: f64,
        /// How many trials one promotion is out of.
        reduction_factor: f64,
        /// Brackets of different first rungs.
        brackets: usize,
        /// Seed of the bracket a trial goes to.
        seed: u64,
    );

    search_properties!();

    /// The rungs of bracket `s`, highest milestone first (as Ray's `_Bracket`).
    fn rungs(&self, s: usize) -> Vec<(f64, HashMap<usize, f64>)> {
        let n = ((self.max_t / self.grace_period).ln() / self.reduction_factor.ln() - s as f64
            + 1.0)
            .floor()
            .max(0.0) as usize;
        (0..n)
            .rev()
            .map(|k| {
                (
                    self.grace_period * self.reduction_factor.powi((k + s) as i32),
                    HashMap::new(),
                )
            })
            .collect()
    }

    fn state(&mut self) -> &mut AshaState {
        if self.state.is_none() {
            let brackets = (0..self.brackets.max(1)).map(|s| self.rungs(s)).collect();
            self.state = Some(AshaState {
                brackets,
                of_trial: HashMap::new(),
                rng: Rng::new(self.seed),
            });
        }
        self.state.as_mut().expect("just made")
    }

    /// The milestones of bracket `s` (for tests and the status line).
    pub fn milestones(&self, s: usize) -> Vec<f64> {
        self.rungs(s).into_iter().map(|(m, _)| m).collect()
    }
}

fn number(r: &Metrics, key: &str) -> Option<f64> {
    match r.get(key) {
        Some(Value::Number(n)) => n.as_f64(),
        Some(Value::Bool(b)) => Some(f64::from(u8::from(*b))),
        _ => None,
    }
}

/// Takes the experiment's metric and mode where the scheduler has none of its own.
pub(crate) fn adopt(
    own: (&mut Option<String>, &mut Option<Mode>),
    metric: Option<&str>,
    mode: Option<Mode>,
) {
    if own.0.is_none() {
        *own.0 = metric.map(str::to_string);
    }
    if own.1.is_none() {
        *own.1 = mode;
    }
}

/// The error of a scheduler `name` that has no metric or mode.
pub(crate) fn need_metric(
    name: &str,
    metric: &Option<String>,
    mode: &Option<Mode>,
) -> Result<(), TuneError> {
    if metric.is_none() || mode.is_none() {
        return Err(TuneError::Scheduler(format!(
            "{name}: needs a metric and a mode (on the scheduler or in TuneConfig)"
        )));
    }
    Ok(())
}

impl TrialScheduler for Asha {
    fn set_search_properties(&mut self, metric: Option<&str>, mode: Option<Mode>) {
        adopt((&mut self.metric, &mut self.mode), metric, mode);
    }

    fn validate(&self) -> Result<(), TuneError> {
        let bad = |problem: String| Err(TuneError::Scheduler(format!("ASHA: {problem}")));
        need_metric("ASHA", &self.metric, &self.mode)?;
        if !(self.grace_period > 0.0 && self.grace_period.is_finite()) {
            return bad(format!("grace_period {} must be > 0", self.grace_period));
        }
        if !(self.max_t >= self.grace_period && self.max_t.is_finite()) {
            return bad(format!(
                "max_t {} must be >= grace_period {}",
                self.max_t, self.grace_period
            ));
        }
        if !(self.reduction_factor > 1.0 && self.reduction_factor.is_finite()) {
            return bad(format!(
                "reduction_factor {} must be > 1",
                self.reduction_factor
            ));
        }
        if !(1..=100).contains(&self.brackets) {
            return bad(format!("brackets {} must be in [1, 100]", self.brackets));
        }
        Ok(())
    }

    fn on_result(&mut self, trial: usize, result: &Metrics) -> Action {
        let (Some(metric), Some(mode)) = (self.metric.clone(), self.mode) else {
            return Action::Continue;
        };
        let (Some(t), Some(value)) = (number(result, &self.time_attr), number(result, &metric))
        else {
            return Action::Continue;
        };
        if t >= self.max_t {
            return Action::Stop;
        }
        let rf = self.reduction_factor;
        let st = self.state();
        let b = match st.of_trial.get(&trial) {
            Some(&b) => b,
            None => {
                // As Ray: brackets with more rungs are likelier (softmax of their sizes).
                let sizes: Vec<f64> = st.brackets.iter().map(|b| b.len() as f64).collect();
                let top = sizes.iter().copied().fold(f64::MIN, f64::max);
                let w: Vec<f64> = sizes.iter().map(|s| (s - top).exp()).collect();
                let mut x = st.rng.random() * w.iter().sum::<f64>();
                let mut pick = w.len() - 1;
                for (i, wi) in w.iter().enumerate() {
                    if x < *wi {
                        pick = i;
                        break;
                    }
                    x -= wi;
                }
                st.of_trial.insert(trial, pick);
                pick
            }
        };
        // Higher is better inside: min mode compares the negated metric.
        let score = match mode {
            Mode::Max => value,
            Mode::Min => -value,
        };
        let mut action = Action::Continue;
        for (milestone, recorded) in st.brackets[b].iter_mut() {
            if t < *milestone || recorded.contains_key(&trial) {
                continue;
            }
            let values: Vec<f64> = recorded.values().copied().collect();
            if let Some(cutoff) = percentile(&values, (1.0 - 1.0 / rf) * 100.0)
                && score < cutoff
            {
                action = Action::Stop;
            }
            recorded.insert(trial, score);
            break;
        }
        action
    }
}

/// Ray's `MedianStoppingRule`: a trial past `grace_period` of `time_attr` stops when its best
/// result is worse than the median of the other trials' running means at the same time,
/// once at least `min_samples_required` other trials have got that far.
#[derive(Debug, Clone)]
pub struct MedianStopping {
    time_attr: String,
    metric: Option<String>,
    mode: Option<Mode>,
    grace_period: f64,
    min_samples_required: usize,
    /// Per trial, its (time, score) results, higher scores better.
    results: HashMap<usize, Vec<(f64, f64)>>,
}

impl Default for MedianStopping {
    fn default() -> Self {
        MedianStopping {
            time_attr: "time_total_s".into(),
            metric: None,
            mode: None,
            grace_period: 60.0,
            min_samples_required: 3,
            results: HashMap::new(),
        }
    }
}

impl MedianStopping {
    /// Ray's defaults: `time_total_s`, grace period 60, 3 other trials needed.
    pub fn new() -> Self {
        MedianStopping::default()
    }

    setter!(
        /// No trial stops before this much `time_attr`.
        grace_period: f64,
        /// Other trials needed at the same time before a median counts.
        min_samples_required: usize,
    );

    search_properties!();
}

impl TrialScheduler for MedianStopping {
    fn set_search_properties(&mut self, metric: Option<&str>, mode: Option<Mode>) {
        adopt((&mut self.metric, &mut self.mode), metric, mode);
    }

    fn validate(&self) -> Result<(), TuneError> {
        need_metric("median stopping", &self.metric, &self.mode)?;
        if !(self.grace_period >= 0.0 && self.grace_period.is_finite()) {
            return Err(TuneError::Scheduler(format!(
                "median stopping: grace_period {} must be >= 0",
                self.grace_period
            )));
        }
        Ok(())
    }

    fn on_result(&mut self, trial: usize, result: &Metrics) -> Action {
        let (Some(metric), Some(mode)) = (self.metric.as_deref(), self.mode) else {
            return Action::Continue;
        };
        let (Some(t), Some(v)) = (number(result, &self.time_attr), number(result, metric)) else {
            return Action::Continue;
        };
        let score = match mode {
            Mode::Max => v,
            Mode::Min => -v,
        };
        self.results.entry(trial).or_default().push((t, score));
        if t < self.grace_period {
            return Action::Continue;
        }
        // The other trials that have got as far, each by its mean score over its results from
        // the grace period up to `t` (as Ray's running mean; one with none there is left out).
        let grace = self.grace_period;
        let means: Vec<f64> = self
            .results
            .iter()
            .filter(|&(&o, r)| o != trial && r.last().is_some_and(|&(ot, _)| ot >= t))
            .filter_map(|(_, r)| {
                let upto: Vec<f64> = r
                    .iter()
                    .filter(|(ot, _)| *ot >= grace && *ot <= t)
                    .map(|p| p.1)
                    .collect();
                (!upto.is_empty()).then(|| upto.iter().sum::<f64>() / upto.len() as f64)
            })
            .collect();
        if means.len() < self.min_samples_required.max(1) {
            return Action::Continue;
        }
        let median = percentile(&means, 50.0).unwrap_or(f64::NEG_INFINITY);
        let best = self.results[&trial]
            .iter()
            .map(|p| p.1)
            .fold(f64::NEG_INFINITY, f64::max);
        if best < median {
            Action::Stop
        } else {
            Action::Continue
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn r(t: f64, m: f64) -> Metrics {
        json!({"training_iteration": t, "score": m})
            .as_object()
            .unwrap()
            .clone()
    }

    #[test]
    fn median_stopping_compares_with_the_others_running_means() {
        let mut m = MedianStopping::new()
            .time_attr("training_iteration")
            .metric("score")
            .mode(Mode::Max)
            .grace_period(2.0)
            .min_samples_required(2);
        // Trials 0 and 1 score 10 and 20 at t = 1..3 (running means 10 and 20).
        for t in 1..=3 {
            assert_eq!(m.on_result(0, &r(t as f64, 10.0)), Action::Continue);
            assert_eq!(m.on_result(1, &r(t as f64, 20.0)), Action::Continue);
        }
        // Trial 2 at 16: within the grace period at 1, then 16 >= median(10, 20) = 15.
        assert_eq!(m.on_result(2, &r(1.0, 16.0)), Action::Continue);
        assert_eq!(m.on_result(2, &r(2.0, 16.0)), Action::Continue);
        // Trial 3 at 14: below median(10, 20, 16) = 16 once past the grace period.
        assert_eq!(m.on_result(3, &r(1.0, 14.0)), Action::Continue);
        assert_eq!(m.on_result(3, &r(2.0, 14.0)), Action::Stop);
        // Trial 4 alone beyond t = 3: too few others to judge.
        assert_eq!(m.on_result(4, &r(5.0, 0.0)), Action::Continue);
    }

    #[test]
    fn percentile_matches_numpy() {
        // numpy.percentile([1, 2, 3, 4], 75) == 3.25
        assert_eq!(percentile(&[4.0, 1.0, 3.0, 2.0], 75.0), Some(3.25));
        assert_eq!(percentile(&[5.0], 75.0), Some(5.0));
        assert_eq!(percentile(&[], 75.0), None);
    }

    #[test]
    fn rungs_are_rays() {
        let a = Asha {
            max_t: 81.0,
            grace_period: 1.0,
            reduction_factor: 3.0,
            brackets: 2,
            ..Asha::default()
        };
        // Ray: int(log(81)/log(3) - s + 1) rungs (log(81)/log(3) is 4.000000000000001 in
        // floating point, so 5), min_t * rf^(k+s), highest first.
        assert_eq!(a.milestones(0), [81.0, 27.0, 9.0, 3.0, 1.0]);
        assert_eq!(a.milestones(1), [81.0, 27.0, 9.0, 3.0]);
    }

    #[test]
    fn a_trial_below_the_rung_quantile_stops() {
        let mut a = Asha {
            metric: Some("score".into()),
            mode: Some(Mode::Max),
            max_t: 16.0,
            grace_period: 1.0,
            reduction_factor: 2.0,
            ..Asha::default()
        };
        // Rung 1: trials 0..3 reach it in turn with 10, 20, 5, 30.
        assert_eq!(a.on_result(0, &r(1.0, 10.0)), Action::Continue); // first: no cutoff
        assert_eq!(a.on_result(1, &r(1.0, 20.0)), Action::Continue); // median of [10] = 10
        assert_eq!(a.on_result(2, &r(1.0, 5.0)), Action::Stop); // median of [10, 20] = 15
        assert_eq!(a.on_result(3, &r(1.0, 30.0)), Action::Continue);
        // Between rungs nothing is decided; at 2 the next rung starts.
        assert_eq!(a.on_result(0, &r(1.5, 0.0)), Action::Continue);
        assert_eq!(a.on_result(1, &r(2.0, 25.0)), Action::Continue);
        assert_eq!(a.on_result(0, &r(2.0, 11.0)), Action::Stop); // median of [25]
        // max_t ends every trial.
        assert_eq!(a.on_result(1, &r(16.0, 99.0)), Action::Stop);
        // Min mode: lower is better.
        let mut m = Asha {
            metric: Some("score".into()),
            mode: Some(Mode::Min),
            reduction_factor: 2.0,
            ..Asha::default()
        };
        assert_eq!(m.on_result(0, &r(1.0, 1.0)), Action::Continue);
        assert_eq!(m.on_result(1, &r(1.0, 2.0)), Action::Stop);
    }
}
