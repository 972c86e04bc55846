//! Environments with Gymnasium's semantics: the [`Env`] trait, [`Space`]s, the [`TimeLimit`]
//! wrapper, [`VectorEnv`], a registry, and Gymnasium's classic-control envs, each bit-exact
//! with Gymnasium 1.4 under NumPy 2 (seeded resets included):
//!
//! | id | env | actions | time limit | reward threshold |
//! |----|-----|---------|------------|------------------|
//! | `CartPole-v1` | [`CartPole`] | `Discrete(2)` | 500 | 475 |
//! | `Acrobot-v1` | [`Acrobot`] | `Discrete(3)` | 500 | -100 |
//! | `MountainCar-v0` | [`MountainCar`] | `Discrete(3)` | 200 | -110 |
//! | `MountainCarContinuous-v0` | [`ContinuousMountainCar`] | `Box(-1, 1, (1,))` | 999 | 90 |
//! | `Pendulum-v1` | [`Pendulum`] | `Box(-2, 2, (1,))` | 200 | none |

mod acrobot;
mod cartpole;
mod continuous_mountain_car;
mod env;
mod mountain_car;
mod np_math;
mod np_random;
mod pendulum;
mod registry;
mod render;
mod space;
mod state_words;
mod vector;

pub use acrobot::Acrobot;
pub use cartpole::CartPole;
pub use continuous_mountain_car::ContinuousMountainCar;
pub use env::{Action, Env, Info, Step, TimeLimit, Transition};
pub use mountain_car::MountainCar;
pub use np_random::NpRandom;
pub use pendulum::Pendulum;
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
