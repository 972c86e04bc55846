//! The `rllib` command's library: configs, the training driver, env runners, checkpoints,
//! evaluation, result files, the training loop of one run (`trial`), signals and the examples
//! compiled into the binary.

pub mod algorithm;
pub mod checkpoint;
pub mod cluster_cli;
pub mod config;
pub mod console;
pub mod env_runner;
pub mod evaluate;
pub mod examples;
pub mod fsio;
pub mod learners;
pub mod offline;
pub mod plot;
pub mod remote_runner;
pub mod render;
pub mod results;
pub mod search;
pub mod serving;
pub mod signals;
pub mod state;
pub mod trainable;
pub mod trial;
