//! Reinforcement-learning algorithms, one folder each ([`ppo`], [`dqn`], [`sac`]), on shared parts that depend
//! on no algorithm: networks and their backends ([`nn`]), Adam ([`optim`]), action
//! distributions, GAE, the `MeanStdFilter` connector, sample batches and the memory estimate.

pub mod config;
pub mod distributions;
pub mod dqn;
pub mod error;
pub mod filter;
pub mod gae;
pub mod learner;
pub mod marwil;
pub mod memory;
pub mod metrics;
pub mod nn;
pub mod optim;
pub mod policy;
pub mod ppo;
pub mod replay;
pub mod rl_module;
pub mod sac;
pub mod sample_batch;

pub use config::{
    Activation, Algo, AlgorithmConfig, Device, LearnerBackendKind, ModelConfig, ObservationFilter,
};
pub use error::LearnerError;
pub use filter::{MeanStdFilter, ReturnStdFilter, RunningStat};
pub use learner::{LearnerMetrics, MinibatchStats};
pub use nn::{NamedTensor, Weights};
pub use optim::OptimizerState;
pub use ppo::{ActionSpec, PpoLearner, PpoModuleSpec, PpoPolicy};
pub use rl_module::ModuleSpec;
pub use sample_batch::{Fragment, SampleBatch};
