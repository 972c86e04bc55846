//! MARWIL (Wang et al., 2018, "Exponentially weighted imitation learning for batched
//! historical data") and BC as RLlib runs them: offline algorithms that learn from recorded
//! episodes (`input`), with PPO's module (a policy head and a value head). MARWIL weights each
//! recorded action's log-likelihood by `exp(β · A / √c²)`, where `A` is the discounted return
//! minus the value estimate and `c²` a moving average of `A²`; BC is the case `β = 0`, plain
//! behaviour cloning (RLlib's `BCConfig` is a `MARWILConfig` with `beta = 0`).

pub mod config;
pub mod learner;

pub use config::{MARWIL_KEYS, MarwilConfig};
pub use learner::{MarwilLearner, OfflineBatch};
