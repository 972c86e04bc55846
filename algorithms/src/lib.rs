//! Reinforcement-learning algorithms: PPO's config, RLModule, learner, GAE and the
//! `MeanStdFilter` connector.

pub mod config;
pub mod filter;
pub mod gae;
pub mod learner;
pub mod module;
pub mod sample_batch;

pub use config::{Activation, AlgorithmConfig, Device, ModelConfig, ObservationFilter};
pub use filter::{MeanStdFilter, RunningStat};
pub use learner::{
    LearnerError, LearnerMetrics, LossReport, MinibatchData, OptimizerState, PpoLearner,
    evaluate_loss,
};
pub use module::{MlpPolicy, MlpSpec, NamedTensor, Weights};
pub use sample_batch::{Fragment, SampleBatch};
