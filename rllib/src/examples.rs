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
pub const EXAMPLES: &[Example] = &[
    Example {
        id: "cartpole-ppo",
        description: "PPO on CartPole-v1, RLlib's classic tuned example (stops at return 150)",
        yaml: include_str!("../../configs/cartpole-ppo.yaml"),
    },
    Example {
        id: "cartpole-ppo-pbt",
        description: "cartpole-ppo as a population of 4 under Tune's PBT (lr and clip_param mutated)",
        yaml: include_str!("../../configs/cartpole-ppo-pbt.yaml"),
    },
    Example {
        id: "cartpole-dqn",
        description: "DQN on CartPole-v1, RLlib's tuned example (return 450 within 200k steps)",
        yaml: include_str!("../../configs/cartpole-dqn.yaml"),
    },
    Example {
        id: "cartpole-bc",
        description: "BC on CartPole-v1 from recorded episodes of a trained PPO policy (evaluation return 450)",
        yaml: include_str!("../../configs/cartpole-bc.yaml"),
    },
    Example {
        id: "acrobot-ppo",
        description: "PPO on Acrobot-v1, rl-zoo's settings (return -100 within 1M steps)",
        yaml: include_str!("../../configs/acrobot-ppo.yaml"),
    },
    Example {
        id: "mountaincar-dqn",
        description: "DQN on MountainCar-v0, rl-zoo's settings (return -110 within 120k steps)",
        yaml: include_str!("../../configs/mountaincar-dqn.yaml"),
    },
    Example {
        id: "pendulum-ppo",
        description: "PPO on Pendulum-v1, RLlib's tuned example (return -300 within 400k steps)",
        yaml: include_str!("../../configs/pendulum-ppo.yaml"),
    },
    Example {
        id: "pendulum-sac",
        description: "SAC on Pendulum-v1, RLlib's tuned example (return -250 within 40k steps)",
        yaml: include_str!("../../configs/pendulum-sac.yaml"),
    },
    Example {
        id: "mountaincarcontinuous-sac",
        description: "SAC on MountainCarContinuous-v0, rl-zoo's settings (return 90 within 50k steps)",
        yaml: include_str!("../../configs/mountaincarcontinuous-sac.yaml"),
    },
];

/// The example with this id.
pub fn find(id: &str) -> Option<&'static Example> {
    EXAMPLES.iter().find(|e| e.id == id)
}
