//! The learner of each algorithm, behind one type for the driver and checkpoints.

use algorithms::dqn::DqnLearner;
use algorithms::marwil::MarwilLearner;
use algorithms::ppo::PpoLearner;
use algorithms::sac::SacLearner;
use algorithms::{AlgorithmConfig, LearnerError, ModuleSpec, Weights};

use crate::state::LearnerState;

/// One of the learners.
#[derive(Debug)]
pub enum Learner {
    /// PPO.
    Ppo(PpoLearner),
    /// DQN.
    Dqn(DqnLearner),
    /// SAC.
    Sac(SacLearner),
    /// BC and MARWIL.
    Marwil(MarwilLearner),
}

/// The name of the single optimizer of PPO and DQN.
pub const DEFAULT_OPTIMIZER: &str = "default_optimizer";

impl Learner {
    /// The learner of `spec`'s algorithm, starting from the module's `weights`.
    pub fn new(
        cfg: &AlgorithmConfig,
        spec: &ModuleSpec,
        weights: &Weights,
        seed: u64,
    ) -> Result<Self, LearnerError> {
        Ok(match spec {
            ModuleSpec::Ppo(s) => {
                Learner::Ppo(PpoLearner::new(cfg.clone(), s.clone(), weights, seed)?)
            }
            ModuleSpec::Dqn(s) => Learner::Dqn(DqnLearner::new(cfg.clone(), s.clone(), weights)?),
            ModuleSpec::Sac(s) => {
                Learner::Sac(SacLearner::new(cfg.clone(), s.clone(), weights, seed)?)
            }
            ModuleSpec::Bc(s) | ModuleSpec::Marwil(s) => {
                Learner::Marwil(MarwilLearner::new(cfg.clone(), s.clone(), weights, seed)?)
            }
        })
    }

    /// The whole module's weights.
    pub fn weights(&self) -> Result<Weights, LearnerError> {
        match self {
            Learner::Ppo(l) => l.weights(),
            Learner::Marwil(l) => l.ppo().weights(),
            Learner::Dqn(l) => l.weights(),
            Learner::Sac(l) => l.weights(),
        }
    }

    /// What env runners act with.
    pub fn inference_weights(&self) -> Result<Weights, LearnerError> {
        match self {
            Learner::Ppo(l) => l.weights(),
            Learner::Marwil(l) => l.ppo().weights(),
            Learner::Dqn(l) => l.inference_weights(),
            Learner::Sac(l) => l.inference_weights(),
        }
    }

    /// [`inference_weights`](Self::inference_weights) into `out`, reusing its buffers.
    pub fn inference_weights_into(&self, out: &mut Weights) -> Result<(), LearnerError> {
        match self {
            Learner::Ppo(l) => {
                *out = l.weights()?;
                Ok(())
            }
            Learner::Marwil(l) => {
                *out = l.ppo().weights()?;
                Ok(())
            }
            Learner::Dqn(l) => l.inference_weights_into(out),
            Learner::Sac(l) => l.inference_weights_into(out),
        }
    }

    /// The learner's state.
    pub fn get_state(&self) -> Result<LearnerState, LearnerError> {
        let weights = self.weights()?;
        Ok(match self {
            Learner::Ppo(l) => LearnerState {
                weights,
                optimizers: vec![(DEFAULT_OPTIMIZER.into(), l.optimizer_state()?)],
                kl_coeff: Some(l.kl_coeff()),
                rng: Some(l.rng_state()),
                ..Default::default()
            },
            Learner::Marwil(l) => LearnerState {
                weights,
                optimizers: vec![(DEFAULT_OPTIMIZER.into(), l.ppo().optimizer_state()?)],
                sqd_adv_norm: Some(l.sqd_adv_norm()),
                ..Default::default()
            },
            Learner::Dqn(l) => LearnerState {
                weights,
                optimizers: vec![(DEFAULT_OPTIMIZER.into(), l.optimizer_state()?)],
                target_counters: Some(l.target_counters()),
                ..Default::default()
            },
            Learner::Sac(l) => LearnerState {
                weights,
                optimizers: l
                    .optimizer_states()?
                    .into_iter()
                    .map(|(n, s)| (n.to_string(), s))
                    .collect(),
                rng: Some(l.rng_state()),
                log_alpha: Some(l.log_alpha()),
                target_counters: Some(l.target_counters()),
                ..Default::default()
            },
        })
    }

    /// A learner continuing from a saved state (weights, optimizers, counters).
    pub fn from_state(
        cfg: &AlgorithmConfig,
        spec: &ModuleSpec,
        s: &LearnerState,
    ) -> Result<Self, LearnerError> {
        let missing =
            |what: &str| LearnerError::Mismatch(format!("the learner state has no {what}"));
        let mut l = Learner::new(cfg, spec, &s.weights, 0)?;
        let default_opt = || {
            s.optimizers
                .iter()
                .find(|(n, _)| n == DEFAULT_OPTIMIZER)
                .map(|(_, o)| o)
                .ok_or_else(|| missing("default_optimizer state"))
        };
        match &mut l {
            Learner::Ppo(p) => {
                p.set_optimizer_state(default_opt()?)?;
                p.set_kl_coeff(s.kl_coeff.ok_or_else(|| missing("kl_coeff"))?);
                p.set_rng_state(s.rng.ok_or_else(|| missing("shuffle_rng"))?);
            }
            Learner::Marwil(m) => {
                m.ppo_mut().set_optimizer_state(default_opt()?)?;
                m.set_sqd_adv_norm(
                    s.sqd_adv_norm
                        .ok_or_else(|| missing("moving_average_sqd_adv_norm"))?,
                );
            }
            Learner::Dqn(d) => {
                d.set_optimizer_state(default_opt()?)?;
                d.set_target_counters(
                    s.target_counters
                        .ok_or_else(|| missing("target counters"))?,
                );
            }
            Learner::Sac(a) => {
                a.set_optimizer_states(&s.optimizers)?;
                a.set_log_alpha(s.log_alpha.ok_or_else(|| missing("log_alpha"))?);
                a.set_rng_state(s.rng.ok_or_else(|| missing("rng"))?);
                a.set_target_counters(
                    s.target_counters
                        .ok_or_else(|| missing("target counters"))?,
                );
            }
        }
        Ok(l)
    }
}
