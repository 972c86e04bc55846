//! SAC (Haarnoja et al., 2018) as RLlib runs it: twin Q networks with targets, a squashed
//! Gaussian policy, automatic entropy tuning.

pub mod config;
pub mod learner;
pub mod module;

pub use config::SacConfig;
pub use learner::{SacLearner, SacUpdate};
pub use module::{SacModuleSpec, SacPolicy};
