//! DQN (Mnih et al., 2015) as RLlib runs it: double Q, dueling heads, n-step returns,
//! target networks, ε-greedy exploration, uniform or prioritised replay.

pub mod config;
pub mod learner;
pub mod module;

pub use config::DqnConfig;
pub use learner::{DqnLearner, DqnUpdate};
pub use module::{DqnModuleSpec, DqnPolicy};
