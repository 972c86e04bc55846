//! The saved-state layout of the classic-control envs: `[flags, values…, rng (4 words)]`, with
//! the values as f64 bits. Loading checks the length, the flags and that every value is finite,
//! so that a hand-edited checkpoint is refused with a message instead of stepping on NaN.

use crate::NpRandom;

/// Flag bit set when the env's random generator exists (it is created by the first reset).
pub(crate) const HAS_RNG: u64 = 1 << 63;

/// Builds the words of a state: `flags` (with [`HAS_RNG`] added when `rng` is some), `values`,
/// then the generator's state.
pub(crate) fn save(flags: u64, values: &[f64], rng: Option<&NpRandom>) -> Vec<u64> {
    let (rs, ri) = rng.map_or((0, 0), NpRandom::to_state);
    let mut w = Vec::with_capacity(values.len() + 5);
    w.push(flags | if rng.is_some() { HAS_RNG } else { 0 });
    w.extend(values.iter().map(|v| v.to_bits()));
    w.extend([(rs >> 64) as u64, rs as u64, (ri >> 64) as u64, ri as u64]);
    w
}

/// A parsed, validated state.
#[derive(Debug)]
pub(crate) struct StateWords {
    flags: u64,
    values: Vec<f64>,
    rng: Option<NpRandom>,
}

impl StateWords {
    /// Parses what [`save`] wrote for `n_values` values; `known_flags` are the env's own flag
    /// bits (besides [`HAS_RNG`]).
    pub(crate) fn parse(
        env: &str,
        w: &[u64],
        n_values: usize,
        known_flags: u64,
    ) -> Result<Self, String> {
        if w.len() != n_values + 5 {
            return Err(format!(
                "{env}: a state has {} words, found {}",
                n_values + 5,
                w.len()
            ));
        }
        let flags = w[0];
        if flags & !(known_flags | HAS_RNG) != 0 {
            return Err(format!("{env}: unknown state flags {flags:#x}"));
        }
        let values: Vec<f64> = w[1..=n_values].iter().map(|&b| f64::from_bits(b)).collect();
        if values.iter().any(|v| !v.is_finite()) {
            return Err(format!("{env}: a non-finite value in the state {values:?}"));
        }
        let join = |hi: u64, lo: u64| (u128::from(hi) << 64) | u128::from(lo);
        let r = &w[n_values + 1..];
        let rng = (flags & HAS_RNG != 0)
            .then(|| NpRandom::from_state(join(r[0], r[1]), join(r[2], r[3])));
        Ok(StateWords { flags, values, rng })
    }

    /// Whether an env flag bit is set.
    pub(crate) fn flag(&self, bit: u64) -> bool {
        self.flags & bit != 0
    }

    /// `N` values starting at `from`.
    pub(crate) fn values<const N: usize>(&self, from: usize) -> [f64; N] {
        std::array::from_fn(|i| self.values[from + i])
    }

    /// The generator, if one was saved.
    pub(crate) fn rng(&self) -> Option<NpRandom> {
        self.rng.clone()
    }
}
