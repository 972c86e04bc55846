//! The tuned examples in `configs/`, compiled into the binary so that `rllib example run`
//! works from any folder.

/// One example: its id and YAML text.
#[derive(Debug, Clone, Copy)]
pub struct Example {
    /// The id (`cartpole-ppo`).
    pub id: &'static str,
    /// One line on what it shows.
    pub description: &'static str,
    /// The YAML, as in `configs/<id>.yaml`.
    pub yaml: &'static str,
}

/// Every example, by id.
pub const EXAMPLES: &[Example] = &[Example {
    id: "cartpole-ppo",
    description: "PPO on CartPole-v1, RLlib's classic tuned example (stops at return 150)",
    yaml: include_str!("../../configs/cartpole-ppo.yaml"),
}];

/// The example with this id.
pub fn find(id: &str) -> Option<&'static Example> {
    EXAMPLES.iter().find(|e| e.id == id)
}
