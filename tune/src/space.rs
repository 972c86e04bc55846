//! Search spaces: a config whose values may be grids, random domains or functions of the rest
//! of the config, anywhere in it (Ray Tune's `param_space`), and the variants made from it
//! (Ray's basic variant generator: every grid combination, `num_samples` times, random domains
//! drawn anew for each, seeded).

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::TuneError;

/// The most trials one experiment may make.
pub const MAX_TRIALS: usize = 1_000_000;

/// A distribution to draw a value from (`tune.uniform`, `tune.choice`, ...).
#[derive(Debug, Clone, PartialEq)]
pub enum Domain {
    /// One of the values, each as likely.
    Choice(Vec<Value>),
    /// Uniform in `[low, high)`.
    Uniform { low: f64, high: f64 },
    /// Uniform, rounded to a multiple of `q`.
    QUniform { low: f64, high: f64, q: f64 },
    /// Log-uniform in `[low, high)` (`base` 10 as Ray's default; the base does not change the
    /// distribution, only how Ray spells it).
    LogUniform { low: f64, high: f64 },
    /// Log-uniform, rounded to a multiple of `q`.
    QLogUniform { low: f64, high: f64, q: f64 },
    /// An integer in `[low, high)`.
    RandInt { low: i64, high: i64 },
    /// An integer in `[low, high]` that is a multiple of `q` (Ray's `qrandint` includes `high`).
    QRandInt { low: i64, high: i64, q: i64 },
    /// Normal with this mean and standard deviation.
    RandN { mean: f64, sd: f64 },
}

impl Domain {
    /// Checks the bounds (an empty or reversed range, a log bound <= 0, q <= 0).
    pub fn validate(&self) -> Result<(), String> {
        let finite = |x: f64| x.is_finite();
        match *self {
            Domain::Choice(ref v) if v.is_empty() => Err("choice([]) has nothing to choose".into()),
            Domain::Choice(_) => Ok(()),
            Domain::Uniform { low, high } | Domain::QUniform { low, high, .. }
                if !(finite(low) && finite(high) && low < high) =>
            {
                Err(format!(
                    "uniform({low}, {high}): needs low < high, both finite"
                ))
            }
            Domain::LogUniform { low, high } | Domain::QLogUniform { low, high, .. }
                if !(finite(low) && finite(high) && low > 0.0 && low < high) =>
            {
                Err(format!("loguniform({low}, {high}): needs 0 < low < high"))
            }
            Domain::QUniform { q, .. } | Domain::QLogUniform { q, .. }
                if !(q > 0.0 && finite(q)) =>
            {
                Err(format!("q = {q}: needs q > 0"))
            }
            Domain::RandInt { low, high } if low >= high => Err(format!(
                "randint({low}, {high}): needs low < high (high is excluded)"
            )),
            Domain::QRandInt { low, high, q } if low > high || q <= 0 => Err(format!(
                "qrandint({low}, {high}, {q}): needs low <= high and q > 0"
            )),
            Domain::QRandInt { low, high, q }
                if (low as f64 / q as f64).ceil() > (high as f64 / q as f64).floor() =>
            {
                Err(format!(
                    "qrandint({low}, {high}, {q}): no multiple of {q} between {low} and {high}"
                ))
            }
            Domain::RandN { mean, sd } if !(finite(mean) && finite(sd) && sd > 0.0) => Err(
                format!("randn({mean}, {sd}): needs a finite mean and sd > 0"),
            ),
            _ => Ok(()),
        }
    }

    /// A domain written as JSON, one key naming it: `{"uniform": [0.1, 0.3]}`,
    /// `{"loguniform": [1e-5, 1e-3]}`, `{"quniform": [lo, hi, q]}`, `{"qloguniform": [lo, hi,
    /// q]}`, `{"randint": [lo, hi]}`, `{"qrandint": [lo, hi, q]}`, `{"randn": [mean, sd]}` or
    /// `{"choice": [...]}`; checked as [`validate`](Domain::validate) does.
    pub fn from_json(v: &Value) -> Result<Domain, String> {
        let form = "a mapping of one domain to its arguments, such as {\"uniform\": [0.1, 0.3]}";
        let Some((name, args)) = v
            .as_object()
            .filter(|m| m.len() == 1)
            .and_then(|m| m.iter().next())
        else {
            return Err(format!("expected {form}, got {v}"));
        };
        let list = args
            .as_array()
            .ok_or_else(|| format!("{name}: expected a list of arguments, got {args}"))?;
        let nums = |n: usize| -> Result<Vec<f64>, String> {
            let x: Option<Vec<f64>> = list.iter().map(Value::as_f64).collect();
            match x {
                Some(x) if x.len() == n => Ok(x),
                _ => Err(format!("{name}: expected {n} numbers, got {args}")),
            }
        };
        let ints = |n: usize| -> Result<Vec<i64>, String> {
            let x: Option<Vec<i64>> = list.iter().map(Value::as_i64).collect();
            match x {
                Some(x) if x.len() == n => Ok(x),
                _ => Err(format!("{name}: expected {n} integers, got {args}")),
            }
        };
        let d = match name.as_str() {
            "choice" => Domain::Choice(list.clone()),
            "uniform" => nums(2).map(|x| Domain::Uniform {
                low: x[0],
                high: x[1],
            })?,
            "quniform" => nums(3).map(|x| Domain::QUniform {
                low: x[0],
                high: x[1],
                q: x[2],
            })?,
            "loguniform" => nums(2).map(|x| Domain::LogUniform {
                low: x[0],
                high: x[1],
            })?,
            "qloguniform" => nums(3).map(|x| Domain::QLogUniform {
                low: x[0],
                high: x[1],
                q: x[2],
            })?,
            "randint" => ints(2).map(|x| Domain::RandInt {
                low: x[0],
                high: x[1],
            })?,
            "qrandint" => ints(3).map(|x| Domain::QRandInt {
                low: x[0],
                high: x[1],
                q: x[2],
            })?,
            "randn" => nums(2).map(|x| Domain::RandN {
                mean: x[0],
                sd: x[1],
            })?,
            other => {
                return Err(format!(
                    "unknown domain {other:?} (known: choice, uniform, quniform, loguniform, qloguniform, randint, qrandint, randn)"
                ));
            }
        };
        d.validate()?;
        Ok(d)
    }

    /// One draw.
    pub fn sample(&self, rng: &mut Rng) -> Value {
        let round_to = |x: f64, q: f64| (x / q).round() * q;
        match *self {
            Domain::Choice(ref v) => v[rng.below(v.len() as u64) as usize].clone(),
            Domain::Uniform { low, high } => Value::from(rng.uniform(low, high)),
            Domain::QUniform { low, high, q } => Value::from(round_to(rng.uniform(low, high), q)),
            Domain::LogUniform { low, high } => Value::from(rng.uniform(low.ln(), high.ln()).exp()),
            Domain::QLogUniform { low, high, q } => {
                Value::from(round_to(rng.uniform(low.ln(), high.ln()).exp(), q))
            }
            Domain::RandInt { low, high } => {
                Value::from(low + rng.below(high.abs_diff(low)) as i64)
            }
            Domain::QRandInt { low, high, q } => {
                // Multiples of q between low and high, as Ray rounds a draw in [low, high].
                let first = (low as f64 / q as f64).ceil() as i64;
                let last = (high as f64 / q as f64).floor() as i64;
                let n = (last - first + 1).max(1) as u64;
                Value::from((first + rng.below(n) as i64) * q)
            }
            Domain::RandN { mean, sd } => Value::from(mean + sd * rng.normal()),
        }
    }
}

/// A value computed from the config resolved so far (`tune.sample_from(lambda spec: ...)`).
pub type SampleFn = Arc<dyn Fn(&Value, &mut Rng) -> Value + Send + Sync>;

/// A search space: a config tree whose leaves may be grids, domains or functions.
#[derive(Clone)]
pub enum Space {
    /// A fixed value.
    Value(Value),
    /// A mapping whose values are spaces (keys keep their order).
    Map(Vec<(String, Space)>),
    /// A list whose items are spaces.
    List(Vec<Space>),
    /// Every one of these values, in turn (`tune.grid_search`).
    Grid(Vec<Value>),
    /// A draw from a distribution.
    Domain(Domain),
    /// A function of the rest of the resolved config.
    SampleFrom(SampleFn),
}

impl fmt::Debug for Space {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Space::Value(v) => write!(f, "{v}"),
            Space::Map(m) => f
                .debug_map()
                .entries(m.iter().map(|(k, v)| (k, v)))
                .finish(),
            Space::List(l) => f.debug_list().entries(l).finish(),
            Space::Grid(g) => write!(f, "grid_search({g:?})"),
            Space::Domain(d) => write!(f, "{d:?}"),
            Space::SampleFrom(_) => f.write_str("sample_from(<fn>)"),
        }
    }
}

/// `tune.grid_search(values)`.
pub fn grid_search<V: Into<Value>>(values: impl IntoIterator<Item = V>) -> Space {
    Space::Grid(values.into_iter().map(Into::into).collect())
}
/// `tune.choice(values)`.
pub fn choice<V: Into<Value>>(values: impl IntoIterator<Item = V>) -> Space {
    Space::Domain(Domain::Choice(values.into_iter().map(Into::into).collect()))
}
/// `tune.uniform(low, high)`.
pub fn uniform(low: f64, high: f64) -> Space {
    Space::Domain(Domain::Uniform { low, high })
}
/// `tune.quniform(low, high, q)`.
pub fn quniform(low: f64, high: f64, q: f64) -> Space {
    Space::Domain(Domain::QUniform { low, high, q })
}
/// `tune.loguniform(low, high)`.
pub fn loguniform(low: f64, high: f64) -> Space {
    Space::Domain(Domain::LogUniform { low, high })
}
/// `tune.qloguniform(low, high, q)`.
pub fn qloguniform(low: f64, high: f64, q: f64) -> Space {
    Space::Domain(Domain::QLogUniform { low, high, q })
}
/// `tune.randint(low, high)`: `high` excluded.
pub fn randint(low: i64, high: i64) -> Space {
    Space::Domain(Domain::RandInt { low, high })
}
/// `tune.qrandint(low, high, q)`: `high` included.
pub fn qrandint(low: i64, high: i64, q: i64) -> Space {
    Space::Domain(Domain::QRandInt { low, high, q })
}
/// `tune.randn(mean, sd)`.
pub fn randn(mean: f64, sd: f64) -> Space {
    Space::Domain(Domain::RandN { mean, sd })
}
/// `tune.sample_from(f)`: `f` sees the config with everything else resolved.
pub fn sample_from(f: impl Fn(&Value, &mut Rng) -> Value + Send + Sync + 'static) -> Space {
    Space::SampleFrom(Arc::new(f))
}

impl From<Value> for Space {
    /// A JSON config as a space: `{"grid_search": [...]}` anywhere is a grid, as in RLlib's
    /// YAML files; everything else is fixed.
    fn from(v: Value) -> Self {
        match v {
            Value::Object(m) => {
                if m.len() == 1
                    && let Some(Value::Array(values)) = m.get("grid_search")
                {
                    return Space::Grid(values.clone());
                }
                Space::Map(m.into_iter().map(|(k, v)| (k, Space::from(v))).collect())
            }
            Value::Array(a) => Space::List(a.into_iter().map(Space::from).collect()),
            other => Space::Value(other),
        }
    }
}

macro_rules! fixed_from {
    ($($t:ty),*) => {$(
        impl From<$t> for Space {
            /// A fixed value.
            fn from(v: $t) -> Self {
                Space::Value(Value::from(v))
            }
        }
    )*};
}
fixed_from!(f64, f32, i64, i32, u64, u32, usize, bool, &str, String);

impl Space {
    /// An empty mapping, to [`set`](Space::set) keys on.
    pub fn new() -> Self {
        Space::Map(Vec::new())
    }

    /// Sets `key` (dotted for nested mappings: `"model.fcnet_hiddens"`) to `value`.
    pub fn set(mut self, key: &str, value: impl Into<Space>) -> Self {
        self.insert(key, value.into());
        self
    }

    fn insert(&mut self, key: &str, value: Space) {
        if !matches!(self, Space::Map(_)) {
            *self = Space::Map(Vec::new());
        }
        let Space::Map(m) = self else { return };
        let (head, rest) = match key.split_once('.') {
            Some((h, r)) => (h, Some(r)),
            None => (key, None),
        };
        let slot = match m.iter().position(|(k, _)| k == head) {
            Some(i) => &mut m[i].1,
            None => {
                m.push((head.to_string(), Space::Map(Vec::new())));
                &mut m.last_mut().expect("just pushed").1
            }
        };
        match rest {
            None => *slot = value,
            Some(r) => slot.insert(r, value),
        }
    }

    /// Checks every domain and grid, naming the key at fault.
    pub fn validate(&self) -> Result<(), TuneError> {
        self.walk("", &mut |path, s| match s {
            Space::Grid(g) if g.is_empty() => Err(TuneError::Space {
                key: path.to_string(),
                problem: "grid_search([]) has no values".into(),
            }),
            Space::Domain(d) => d.validate().map_err(|problem| TuneError::Space {
                key: path.to_string(),
                problem,
            }),
            _ => Ok(()),
        })
    }

    fn walk(
        &self,
        path: &str,
        f: &mut dyn FnMut(&str, &Space) -> Result<(), TuneError>,
    ) -> Result<(), TuneError> {
        f(path, self)?;
        let join = |k: &str| {
            if path.is_empty() {
                k.to_string()
            } else {
                format!("{path}.{k}")
            }
        };
        match self {
            Space::Map(m) => m.iter().try_for_each(|(k, v)| v.walk(&join(k), f)),
            Space::List(l) => l
                .iter()
                .enumerate()
                .try_for_each(|(i, v)| v.walk(&join(&i.to_string()), f)),
            _ => Ok(()),
        }
    }

    /// The grids, in order of appearance: (key path, values).
    pub fn grids(&self) -> Vec<(String, Vec<Value>)> {
        let mut out = Vec::new();
        let _ = self.walk("", &mut |path, s| {
            if let Space::Grid(g) = s {
                out.push((path.to_string(), g.clone()));
            }
            Ok(())
        });
        out
    }

    /// The random domains, in order of appearance: (dotted key, domain).
    pub fn domains(&self) -> Vec<(String, Domain)> {
        let mut out = Vec::new();
        let _ = self.walk("", &mut |path, s| {
            if let Space::Domain(d) = s {
                out.push((path.to_string(), d.clone()));
            }
            Ok(())
        });
        out
    }

    /// How many variants one sample makes (the product of the grid sizes).
    pub fn grid_size(&self) -> usize {
        self.grids().iter().map(|(_, g)| g.len()).product()
    }

    /// The config of grid combination `pick` (one index per grid, in [`grids`] order), random
    /// domains drawn from `rng`, then `sample_from` functions over the result.
    fn resolve(&self, pick: &[usize], rng: &mut Rng) -> Value {
        self.resolve_with(pick, &HashMap::new(), rng)
    }

    /// As [`resolve`](Space::resolve), with the domains at the dotted paths of `fixed` taking
    /// those values instead of a draw (a searcher's suggestion).
    pub(crate) fn resolve_with(
        &self,
        pick: &[usize],
        fixed: &HashMap<String, Value>,
        rng: &mut Rng,
    ) -> Value {
        let mut next = 0;
        let mut fns: Vec<(Vec<String>, SampleFn)> = Vec::new();
        let mut v = self.resolve_inner(pick, fixed, &mut next, rng, &mut Vec::new(), &mut fns);
        for (path, f) in fns {
            let x = f(&v, rng);
            set_path(&mut v, &path, x);
        }
        v
    }

    fn resolve_inner(
        &self,
        pick: &[usize],
        fixed: &HashMap<String, Value>,
        next: &mut usize,
        rng: &mut Rng,
        path: &mut Vec<String>,
        fns: &mut Vec<(Vec<String>, SampleFn)>,
    ) -> Value {
        match self {
            Space::Value(v) => v.clone(),
            Space::Map(m) => {
                let mut out = Map::new();
                for (k, s) in m {
                    path.push(k.clone());
                    out.insert(
                        k.clone(),
                        s.resolve_inner(pick, fixed, next, rng, path, fns),
                    );
                    path.pop();
                }
                Value::Object(out)
            }
            Space::List(l) => Value::Array(
                l.iter()
                    .enumerate()
                    .map(|(i, s)| {
                        path.push(i.to_string());
                        let v = s.resolve_inner(pick, fixed, next, rng, path, fns);
                        path.pop();
                        v
                    })
                    .collect(),
            ),
            Space::Grid(g) => {
                let v = g[pick[*next]].clone();
                *next += 1;
                v
            }
            Space::Domain(d) => match fixed.is_empty() {
                true => d.sample(rng),
                false => fixed
                    .get(&path.join("."))
                    .cloned()
                    .unwrap_or_else(|| d.sample(rng)),
            },
            Space::SampleFrom(f) => {
                fns.push((path.clone(), Arc::clone(f)));
                Value::Null
            }
        }
    }

    /// Every variant: `num_samples` times every grid combination (the first grid varies
    /// slowest), each with its own draws from `seed`.
    pub fn variants(&self, num_samples: usize, seed: u64) -> Result<Vec<Value>, TuneError> {
        self.validate()?;
        let sizes: Vec<usize> = self.grids().iter().map(|(_, g)| g.len()).collect();
        let too_many = || {
            TuneError::Config(format!(
                "num_samples {num_samples} × the grids ({}) is more than {MAX_TRIALS} trials",
                sizes
                    .iter()
                    .map(usize::to_string)
                    .collect::<Vec<_>>()
                    .join(" × ")
            ))
        };
        let combos: usize = sizes
            .iter()
            .try_fold(1usize, |n, &s| n.checked_mul(s))
            .ok_or_else(too_many)?;
        if combos
            .checked_mul(num_samples)
            .is_none_or(|n| n > MAX_TRIALS)
        {
            return Err(too_many());
        }
        let mut rng = Rng::new(seed);
        let mut out = Vec::with_capacity(num_samples * combos);
        for _ in 0..num_samples {
            for c in 0..combos {
                let mut pick = vec![0; sizes.len()];
                let mut rest = c;
                for (i, &n) in sizes.iter().enumerate().rev() {
                    pick[i] = rest % n;
                    rest /= n;
                }
                out.push(self.resolve(&pick, &mut rng));
            }
        }
        Ok(out)
    }
}

impl Default for Space {
    fn default() -> Self {
        Space::new()
    }
}

fn set_path(v: &mut Value, path: &[String], x: Value) {
    let Some((last, parents)) = path.split_last() else {
        *v = x;
        return;
    };
    let mut cur = v;
    for p in parents {
        cur = match cur {
            Value::Object(m) => m.entry(p.clone()).or_insert(Value::Null),
            Value::Array(a) => match p.parse::<usize>().ok().and_then(|i| a.get_mut(i)) {
                Some(c) => c,
                None => return,
            },
            _ => return,
        };
    }
    match cur {
        Value::Object(m) => {
            m.insert(last.clone(), x);
        }
        Value::Array(a) => {
            if let Some(slot) = last.parse::<usize>().ok().and_then(|i| a.get_mut(i)) {
                *slot = x;
            }
        }
        _ => {}
    }
}

/// The values of `config` at the paths the space varies (grids, domains, functions): what a
/// trial's name and the status table show.
pub fn varied(space: &Space, config: &Value) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    let _ = space.walk("", &mut |path, s| {
        if matches!(s, Space::Grid(_) | Space::Domain(_) | Space::SampleFrom(_)) {
            let mut cur = config;
            for p in path.split('.') {
                cur = match cur {
                    Value::Object(m) => m.get(p).unwrap_or(&Value::Null),
                    Value::Array(a) => p
                        .parse::<usize>()
                        .ok()
                        .and_then(|i| a.get(i))
                        .unwrap_or(&Value::Null),
                    _ => &Value::Null,
                };
            }
            out.push((path.to_string(), cur.clone()));
        }
        Ok(())
    });
    out
}

/// SplitMix64: small, fast, and the same on every platform (searches are reproducible from
/// their seed).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0x5851_f42d_4c95_7f2d)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn random(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in [low, high).
    pub fn uniform(&mut self, low: f64, high: f64) -> f64 {
        low + (high - low) * self.random()
    }

    /// Uniform in 0..n (n > 0), without modulo bias.
    pub fn below(&mut self, n: u64) -> u64 {
        let n = n.max(1);
        let zone = u64::MAX - (u64::MAX % n);
        loop {
            let x = self.next_u64();
            if x < zone {
                return x % n;
            }
        }
    }

    /// Standard normal (Box–Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.random();
        let u2 = self.random();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn grids_multiply_and_samples_repeat_them() {
        let s = Space::new()
            .set("x", grid_search([0, 1, 2]))
            .set("y", grid_search(["a", "b"]))
            .set("lr", loguniform(1e-4, 1e-2));
        let v = s.variants(2, 7).unwrap();
        assert_eq!(v.len(), 12);
        let xy: Vec<(i64, String)> = v
            .iter()
            .take(6)
            .map(|c| {
                (
                    c["x"].as_i64().unwrap(),
                    c["y"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        assert_eq!(
            xy,
            [(0, "a"), (0, "b"), (1, "a"), (1, "b"), (2, "a"), (2, "b")]
                .map(|(x, y)| (x, y.to_string()))
        );
        assert!(
            v.iter()
                .all(|c| (1e-4..1e-2).contains(&c["lr"].as_f64().unwrap()))
        );
        // Seeded: the same seed gives the same draws, another seed others.
        assert_eq!(v, s.variants(2, 7).unwrap());
        assert_ne!(v, s.variants(2, 8).unwrap());
    }

    #[test]
    fn domains_stay_in_range_and_round() {
        let mut rng = Rng::new(1);
        for _ in 0..2000 {
            let q = Domain::QUniform {
                low: 0.0,
                high: 1.0,
                q: 0.25,
            }
            .sample(&mut rng);
            assert!((q.as_f64().unwrap() / 0.25).fract() == 0.0);
            let r = Domain::RandInt { low: -3, high: 3 }
                .sample(&mut rng)
                .as_i64()
                .unwrap();
            assert!((-3..3).contains(&r));
            let qi = Domain::QRandInt {
                low: 0,
                high: 10,
                q: 5,
            }
            .sample(&mut rng)
            .as_i64()
            .unwrap();
            assert!([0, 5, 10].contains(&qi));
            let c = Domain::Choice(vec![json!(1), json!(2)]).sample(&mut rng);
            assert!(c == json!(1) || c == json!(2));
        }
        let n: Vec<f64> = (0..20_000).map(|_| rng.normal()).collect();
        let mean = n.iter().sum::<f64>() / n.len() as f64;
        let var = n.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n.len() as f64;
        assert!(
            mean.abs() < 0.03 && (var - 1.0).abs() < 0.05,
            "{mean} {var}"
        );
    }

    #[test]
    fn sample_from_sees_the_resolved_config_and_json_grids_parse() {
        let s = Space::from(json!({"a": {"grid_search": [1, 2]}, "model": {"h": 3}})).set(
            "b",
            sample_from(|c, _| json!(c["a"].as_i64().unwrap() * 10)),
        );
        let v = s.variants(1, 0).unwrap();
        assert_eq!(v[1], json!({"a": 2, "model": {"h": 3}, "b": 20}));
        assert_eq!(
            varied(&s, &v[1]),
            vec![("a".to_string(), json!(2)), ("b".to_string(), json!(20))]
        );
    }

    #[test]
    fn bad_spaces_name_their_key() {
        for (s, key) in [
            (Space::new().set("x", grid_search(Vec::<i64>::new())), "x"),
            (Space::new().set("m.lr", uniform(2.0, 1.0)), "m.lr"),
            (Space::new().set("lr", loguniform(0.0, 1.0)), "lr"),
            (Space::new().set("n", randint(3, 3)), "n"),
            (Space::new().set("c", choice(Vec::<i64>::new())), "c"),
        ] {
            let e = s.variants(1, 0).unwrap_err().to_string();
            assert!(e.contains(&format!("`{key}`")), "{e}");
        }
    }
}
