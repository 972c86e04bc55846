//! Errors of learners and networks.

use crate::learner::MinibatchStats;

/// Errors of the learner.
#[derive(Debug, thiserror::Error)]
pub enum LearnerError {
    /// A tensor operation failed (shapes, device).
    #[error("learner: {0}")]
    Candle(#[from] candle_core::Error),
    /// The loss became NaN or infinite: the terms of the minibatch, and (filled in by the
    /// algorithm's learner) which term it was and the configured values that feed it.
    #[error("the loss is not finite{explanation}")]
    NonFinite {
        /// The minibatch's loss terms.
        stats: MinibatchStats,
        /// Where it happened and what feeds the term, from the learner.
        explanation: String,
    },
    /// The batch holds a non-finite reward or observation (the env produced it).
    #[error("{0}")]
    NonFiniteInput(String),
    /// Weights or optimizer state that do not fit the module.
    #[error("{0}")]
    Mismatch(String),
    /// The learner's threads could not be started, or one of them failed (panicked).
    #[error("learner threads: {0}")]
    Threads(String),
}
