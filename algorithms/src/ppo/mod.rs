//! PPO (Schulman et al., 2017) as RLlib runs it: its RLModule, its loss and its learner.

pub mod config;
pub mod learner;
pub mod loss;
pub mod module;

pub use config::{PpoConfig, RewardFilter};
pub use learner::PpoLearner;
pub use loss::{Dist, PpoLoss, Terms};
pub use module::{ActionSpec, PpoModuleSpec, PpoPolicy};
