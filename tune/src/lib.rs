//! Ray Tune on this project's runtime: run many trials of a trainable over a search space,
//! as many at once as the resources allow, stop bad ones early, and report the best.
//!
//! ```no_run
//! use serde_json::json;
//! use tune::{Mode, Space, grid_search};
//!
//! let trainable = tune::function(|config, session: &mut tune::Session| {
//!     let (x, y) = (config["x"].as_f64().unwrap_or(0.0), config["y"].as_f64().unwrap_or(0.0));
//!     session.report(json!({"score": ((x * x + y * y) / 2.0).sqrt()}))
//! });
//! let space = Space::new()
//!     .set("x", grid_search([0, 1, 2, 3, 4]))
//!     .set("y", grid_search([0, 1, 2, 3, 4]));
//! let analysis = tune::run("my_func", trainable, space)?;
//! println!("{}", analysis.get_best_config("score", Mode::Min)?);
//! # Ok::<(), tune::TuneError>(())
//! ```

mod pbt;
mod remote;
mod result;
pub mod scheduler;
mod search;
pub mod space;
mod trainable;
mod tuner;

use std::path::PathBuf;

pub use pbt::{Mutation, Pbt};
pub use remote::{TRIAL_ACTOR, register_trainable, remote_class};
pub use result::{ResultGrid, TrialResult, TrialStatus};
pub use scheduler::{Action, Asha, Fifo, MedianStopping, TrialScheduler};
pub use search::{ConcurrencyLimiter, Searcher, Suggestion, Tpe};
pub use space::{
    Domain, Rng, Space, choice, grid_search, loguniform, qloguniform, qrandint, quniform, randint,
    randn, sample_from, uniform,
};
pub use trainable::{Metrics, Session, Stopped, Trainable, TrialFn, class, function};
pub use tuner::{
    Callback, DirNameFn, Interrupt, LoggerFactory, RunConfig, STATE_FILE, Stop, StopFn, TrialInfo,
    TrialLogger, TuneConfig, Tuner, run, timestamp,
};

/// Whether a higher or a lower metric is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Higher is better.
    Max,
    /// Lower is better.
    Min,
}

impl std::str::FromStr for Mode {
    type Err = TuneError;
    fn from_str(s: &str) -> Result<Self, TuneError> {
        match s {
            "max" => Ok(Mode::Max),
            "min" => Ok(Mode::Min),
            other => Err(TuneError::Config(format!(
                "mode {other:?}: expected \"max\" or \"min\""
            ))),
        }
    }
}

/// What can go wrong before or around trials (a trial's own failure is its ERROR status).
#[derive(Debug, thiserror::Error)]
pub enum TuneError {
    /// A search space that cannot be sampled.
    #[error("search space: `{key}`: {problem}")]
    Space {
        /// The dotted key of the bad entry.
        key: String,
        /// What is wrong with it.
        problem: String,
    },
    /// A scheduler's settings.
    #[error("scheduler: {0}")]
    Scheduler(String),
    /// A setting of the tuner.
    #[error("{0}")]
    Config(String),
    /// The runtime refused the trials.
    #[error("runtime: {0}")]
    Runtime(ray::RayError),
    /// A file of the experiment.
    #[error("{path}: {source}", path = .0.display(), source = .1)]
    Io(PathBuf, std::io::Error),
}
