//! Environments with Gymnasium's semantics: the [`Env`] trait, [`Space`]s, CartPole-v1
//! (bit-exact with Gymnasium 1.x), the [`TimeLimit`] wrapper, [`VectorEnv`] and a registry.

mod cartpole;
mod env;
mod np_random;
mod registry;
mod render;
mod space;
mod vector;

pub use cartpole::CartPole;
pub use env::{Action, Env, Info, Step, TimeLimit, Transition};
pub use np_random::NpRandom;
pub use registry::{EnvMaker, ids, make, make_vec, max_episode_steps, register, reward_threshold};
pub use render::RgbFrame;
pub use space::Space;
pub use vector::{ActionBatch, VectorEnv};

/// Errors of env construction.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EnvError {
    /// No env is registered under this id.
    #[error("unknown env id '{id}'; known ids: {known}")]
    UnknownEnv {
        /// The id asked for.
        id: String,
        /// The registered ids, comma-separated.
        known: String,
    },
    /// An argument out of its range.
    #[error("{0}")]
    InvalidArgument(String),
}
