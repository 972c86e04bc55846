//! Observation and action spaces, as Gymnasium's `Discrete` and `Box`.

use std::fmt;

use crate::NpRandom;

/// The set of valid observations or actions.
#[derive(Debug, Clone, PartialEq)]
pub enum Space {
    /// The integers `start .. start + n` (Gymnasium's `Discrete(n, start)`).
    Discrete {
        /// How many values.
        n: u64,
        /// The first value.
        start: i64,
    },
    /// A box of `f32` values with per-element bounds (Gymnasium's `Box`).
    Box {
        /// Lower bounds, one per element (may be `-inf`).
        low: Vec<f32>,
        /// Upper bounds, one per element (may be `inf`).
        high: Vec<f32>,
        /// The shape; the product of its dimensions is `low.len()`.
        shape: Vec<usize>,
    },
}

impl Space {
    /// `Discrete(n)`, starting at 0.
    pub fn discrete(n: u64) -> Self {
        Space::Discrete { n, start: 0 }
    }

    /// A one-dimensional box with the given bounds.
    pub fn box1d(low: Vec<f32>, high: Vec<f32>) -> Self {
        let shape = vec![low.len()];
        Space::Box { low, high, shape }
    }

    /// Number of `f32` values an element takes when flattened (1 for `Discrete`).
    pub fn flat_dim(&self) -> usize {
        match self {
            Space::Discrete { .. } => 1,
            Space::Box { low, .. } => low.len(),
        }
    }

    /// Whether a discrete value is in the space.
    pub fn contains_discrete(&self, a: i64) -> bool {
        match *self {
            Space::Discrete { n, start } => a >= start && ((a - start) as u64) < n,
            Space::Box { .. } => false,
        }
    }

    /// Whether a flat `f32` element is in the space (right length, within bounds).
    pub fn contains_box(&self, x: &[f32]) -> bool {
        match self {
            Space::Discrete { .. } => false,
            Space::Box { low, high, .. } => {
                x.len() == low.len()
                    && x.iter()
                        .zip(low.iter().zip(high))
                        .all(|(v, (l, h))| v >= l && v <= h)
            }
        }
    }

    /// A random discrete value (uniform), for random policies and tests.
    pub fn sample_discrete(&self, rng: &mut NpRandom) -> Option<i64> {
        match *self {
            Space::Discrete { n, start } => Some(start + rng.below(n) as i64),
            Space::Box { .. } => None,
        }
    }
}

impl fmt::Display for Space {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Space::Discrete { n, start: 0 } => write!(f, "Discrete({n})"),
            Space::Discrete { n, start } => write!(f, "Discrete({n}, start={start})"),
            Space::Box { low, high, shape } => {
                write!(f, "Box({low:?}, {high:?}, {shape:?}, float32)")
            }
        }
    }
}
