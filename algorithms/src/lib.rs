//! Reinforcement-learning algorithms. PPO (config, loss, learner, RLModule) lands here next;
//! this crate is part of the workspace now so that its place in the layout is fixed.
