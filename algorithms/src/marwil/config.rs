//! MARWIL's settings and their keys (BC reads them with `beta = 0`).

use crate::config::key::{ConfigValue as V, KeyKind as K, KeySpec};
use crate::config::{Algo, AlgorithmConfig};
use crate::key;

const ANY: f64 = f64::INFINITY;

/// MARWIL's own settings (RLlib's defaults).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MarwilConfig {
    /// Weight of the advantage in the exponent (0: behaviour cloning).
    pub beta: f64,
    /// Weight of the value loss.
    pub vf_coeff: f64,
    /// Start of the moving average of squared advantages.
    pub moving_average_sqd_adv_norm_start: f64,
    /// Update rate of that moving average.
    pub moving_average_sqd_adv_norm_update_rate: f64,
}

impl Default for MarwilConfig {
    fn default() -> Self {
        MarwilConfig {
            beta: 1.0,
            vf_coeff: 1.0,
            moving_average_sqd_adv_norm_start: 100.0,
            moving_average_sqd_adv_norm_update_rate: 1e-8,
        }
    }
}

impl MarwilConfig {
    /// BC's settings: no advantage weighting and no value loss.
    pub fn bc() -> Self {
        MarwilConfig {
            beta: 0.0,
            vf_coeff: 0.0,
            ..MarwilConfig::default()
        }
    }
}

/// MARWIL's keys.
pub static MARWIL_KEYS: &[KeySpec<AlgorithmConfig>] = &[
    key!(
        "beta",
        [],
        [Algo::Marwil],
        K::Float {
            min: 0.0,
            max: ANY,
            min_inclusive: true
        },
        true,
        "weight of the advantage in the exponent of the action weights (0: behaviour cloning)",
        |c| V::Float(c.marwil.beta),
        |c, v| c.marwil.beta = v.f64()
    ),
    key!(
        "vf_coeff",
        [],
        [Algo::Marwil],
        K::Float {
            min: 0.0,
            max: ANY,
            min_inclusive: true
        },
        true,
        "weight of the value loss",
        |c| V::Float(c.marwil.vf_coeff),
        |c, v| c.marwil.vf_coeff = v.f64()
    ),
    key!(
        "moving_average_sqd_adv_norm_start",
        [],
        [Algo::Marwil],
        K::Float {
            min: 0.0,
            max: ANY,
            min_inclusive: false
        },
        true,
        "start of the moving average of squared advantages that normalises them",
        |c| V::Float(c.marwil.moving_average_sqd_adv_norm_start),
        |c, v| c.marwil.moving_average_sqd_adv_norm_start = v.f64()
    ),
    key!(
        "moving_average_sqd_adv_norm_update_rate",
        [],
        [Algo::Marwil],
        K::Float {
            min: 0.0,
            max: 1.0,
            min_inclusive: true
        },
        true,
        "update rate of the moving average of squared advantages",
        |c| V::Float(c.marwil.moving_average_sqd_adv_norm_update_rate),
        |c, v| c.marwil.moving_average_sqd_adv_norm_update_rate = v.f64()
    ),
];
