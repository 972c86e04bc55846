//! Reinforcement-learning algorithms: PPO's config, RLModule, learner, GAE and the
//! `MeanStdFilter` connector.

pub mod candle_backend;
pub mod config;
pub mod filter;
pub mod fused;
pub mod gae;
pub mod learner;
pub mod linalg;
pub mod memory;
pub mod module;
pub mod sample_batch;
mod spin_pool;

pub use candle_backend::{CandleBackend, LossReport, evaluate_loss};
pub use config::{
    Activation, AlgorithmConfig, Device, LearnerBackendKind, ModelConfig, ObservationFilter,
};
pub use filter::{MeanStdFilter, RunningStat};
pub use fused::FusedBackend;
pub use learner::{
    LearnerBackend, LearnerError, LearnerMetrics, MinibatchData, MinibatchStats, OptimizerState,
    PpoLearner,
};
pub use module::{MlpPolicy, MlpSpec, NamedTensor, Weights};
pub use sample_batch::{Fragment, SampleBatch};
