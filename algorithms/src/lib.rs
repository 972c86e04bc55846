//! Reinforcement-learning algorithms: PPO's config, RLModule, learner, GAE and the
//! `MeanStdFilter` connector.

pub mod candle_backend;
pub mod config;
pub mod filter;
pub mod gae;
pub mod learner;
pub mod module;
pub mod sample_batch;

pub use candle_backend::{CandleBackend, LossReport, evaluate_loss};
pub use config::{Activation, AlgorithmConfig, Device, ModelConfig, ObservationFilter};
pub use filter::{MeanStdFilter, RunningStat};
pub use learner::{
    LearnerBackend, LearnerError, LearnerMetrics, MinibatchData, MinibatchStats, OptimizerState,
    PpoLearner,
};
pub use module::{MlpPolicy, MlpSpec, NamedTensor, Weights};
pub use sample_batch::{Fragment, SampleBatch};
