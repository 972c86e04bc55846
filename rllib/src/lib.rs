//! The `rllib` command's library: configs, the training driver, env runners, checkpoints,
//! evaluation, result files and the examples compiled into the binary.

pub mod algorithm;
pub mod checkpoint;
pub mod config;
pub mod env_runner;
pub mod evaluate;
pub mod examples;
pub mod render;
pub mod results;
