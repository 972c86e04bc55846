//! The module of each algorithm, behind one type: what the driver, env runners, checkpoints
//! and evaluation need without knowing the algorithm (this module is the one place that
//! picks among them).

use envs::Space;

use crate::config::{Algo, AlgorithmConfig};
use crate::distributions::ActionMapping;
use crate::dqn::{DqnModuleSpec, DqnPolicy};
use crate::nn::Weights;
use crate::policy::Policy;
use crate::ppo::{ActionSpec, PpoModuleSpec, PpoPolicy};
use crate::sac::{SacModuleSpec, SacPolicy};

/// An algorithm's module shape.
#[derive(Debug, Clone, PartialEq)]
pub enum ModuleSpec {
    /// PPO's policy and value networks.
    Ppo(PpoModuleSpec),
    /// BC's: PPO's module (the value head unused).
    Bc(PpoModuleSpec),
    /// MARWIL's: PPO's module.
    Marwil(PpoModuleSpec),
    /// DQN's Q network and its target.
    Dqn(DqnModuleSpec),
    /// SAC's policy, Q networks and targets.
    Sac(SacModuleSpec),
}

/// Parameter names and shapes, in a module's order.
pub type ParamShapes = Vec<(String, Vec<usize>)>;

impl ModuleSpec {
    /// The module `cfg`'s algorithm builds for an env with these spaces; errors when the
    /// algorithm cannot act in them (DQN needs discrete actions, SAC continuous ones).
    pub fn for_env(cfg: &AlgorithmConfig, obs: &Space, act: &Space) -> Result<Self, String> {
        let obs_dim = obs.flat_dim();
        let model = cfg.model.clone();
        let ppo_like = |action: ActionSpec| {
            let s = PpoModuleSpec {
                obs_dim,
                action,
                model: model.clone(),
            };
            match cfg.algo {
                Algo::Bc => ModuleSpec::Bc(s),
                Algo::Marwil => ModuleSpec::Marwil(s),
                _ => ModuleSpec::Ppo(s),
            }
        };
        Ok(match (cfg.algo, act) {
            (Algo::Ppo | Algo::Bc | Algo::Marwil, Space::Discrete { n, .. }) => {
                ppo_like(ActionSpec::Discrete(*n as usize))
            }
            (Algo::Ppo | Algo::Bc | Algo::Marwil, Space::Box { low, high, .. }) => {
                ppo_like(ActionSpec::Box {
                    dim: low.len(),
                    low: low.clone(),
                    high: high.clone(),
                })
            }
            (Algo::Dqn, Space::Discrete { n, .. }) => ModuleSpec::Dqn(DqnModuleSpec {
                obs_dim,
                num_actions: *n as usize,
                model,
                dueling: cfg.dqn.dueling,
            }),
            (Algo::Sac, Space::Box { low, high, .. }) => ModuleSpec::Sac(SacModuleSpec {
                obs_dim,
                action_dim: low.len(),
                low: low.clone(),
                high: high.clone(),
                model,
                twin_q: cfg.sac.twin_q,
            }),
            (Algo::Dqn, other) => {
                return Err(format!(
                    "DQN needs a Discrete action space; {} has {other}",
                    cfg.env
                ));
            }
            (Algo::Sac, other) => {
                return Err(format!(
                    "SAC here needs a Box action space; {} has {other}",
                    cfg.env
                ));
            }
        })
    }

    /// The algorithm.
    pub fn algo(&self) -> Algo {
        match self {
            ModuleSpec::Ppo(_) => Algo::Ppo,
            ModuleSpec::Bc(_) => Algo::Bc,
            ModuleSpec::Marwil(_) => Algo::Marwil,
            ModuleSpec::Dqn(_) => Algo::Dqn,
            ModuleSpec::Sac(_) => Algo::Sac,
        }
    }

    /// Observation size.
    pub fn obs_dim(&self) -> usize {
        match self {
            ModuleSpec::Ppo(s) | ModuleSpec::Bc(s) | ModuleSpec::Marwil(s) => s.obs_dim,
            ModuleSpec::Dqn(s) => s.obs_dim,
            ModuleSpec::Sac(s) => s.obs_dim,
        }
    }

    /// Values per action.
    pub fn action_dim(&self) -> usize {
        match self {
            ModuleSpec::Ppo(s) | ModuleSpec::Bc(s) | ModuleSpec::Marwil(s) => s.action.action_dim(),
            ModuleSpec::Dqn(_) => 1,
            ModuleSpec::Sac(s) => s.action_dim,
        }
    }

    /// Values per row of recorded distribution inputs.
    pub fn dist_width(&self) -> usize {
        match self {
            ModuleSpec::Ppo(s) | ModuleSpec::Bc(s) | ModuleSpec::Marwil(s) => s.action.dist_width(),
            ModuleSpec::Dqn(_) | ModuleSpec::Sac(_) => 0,
        }
    }

    /// The model config it was built from.
    pub fn model(&self) -> &crate::config::ModelConfig {
        match self {
            ModuleSpec::Ppo(s) | ModuleSpec::Bc(s) | ModuleSpec::Marwil(s) => &s.model,
            ModuleSpec::Dqn(s) => &s.model,
            ModuleSpec::Sac(s) => &s.model,
        }
    }

    /// Fresh weights of the whole module.
    pub fn init(&self, seed: u64) -> Weights {
        match self {
            ModuleSpec::Ppo(s) | ModuleSpec::Bc(s) | ModuleSpec::Marwil(s) => s.init(seed),
            ModuleSpec::Dqn(s) => s.init(seed),
            ModuleSpec::Sac(s) => s.init(seed),
        }
    }

    /// Parameter names and shapes of the whole module.
    pub fn parameter_shapes(&self) -> ParamShapes {
        match self {
            ModuleSpec::Ppo(s) | ModuleSpec::Bc(s) | ModuleSpec::Marwil(s) => s.parameter_shapes(),
            ModuleSpec::Dqn(s) => s.parameter_shapes(),
            ModuleSpec::Sac(s) => s.parameter_shapes(),
        }
    }

    /// Each optimizer's name and the names and shapes of the parameters it moves, as a
    /// checkpoint stores their moments (SAC's are prefixed with the optimizer's name).
    pub fn optimizer_params(&self) -> Vec<(String, ParamShapes)> {
        let named = |prefix: &str, v: Vec<(String, Vec<usize>)>| {
            v.into_iter()
                .map(|(n, s)| (format!("{prefix}.{n}"), s))
                .collect::<Vec<_>>()
        };
        match self {
            ModuleSpec::Ppo(s) | ModuleSpec::Bc(s) | ModuleSpec::Marwil(s) => {
                vec![("default_optimizer".into(), s.parameter_shapes())]
            }
            ModuleSpec::Dqn(s) => {
                vec![("default_optimizer".into(), s.net_spec().parameter_shapes())]
            }
            ModuleSpec::Sac(s) => {
                let mut out = vec![(
                    "policy".to_string(),
                    named("policy", s.pi_spec().parameter_shapes()),
                )];
                for q in s.q_names() {
                    out.push((q.to_string(), named(q, s.q_spec(q).parameter_shapes())));
                }
                out.push((
                    "alpha".into(),
                    vec![("alpha.log_alpha".to_string(), vec![1])],
                ));
                out
            }
        }
    }

    /// Sets the env's `Box` action bounds (a checkpoint does not store them).
    pub fn set_action_bounds(&mut self, low: &[f32], high: &[f32]) {
        match self {
            ModuleSpec::Ppo(PpoModuleSpec {
                action: ActionSpec::Box {
                    low: l, high: h, ..
                },
                ..
            })
            | ModuleSpec::Bc(PpoModuleSpec {
                action: ActionSpec::Box {
                    low: l, high: h, ..
                },
                ..
            })
            | ModuleSpec::Marwil(PpoModuleSpec {
                action: ActionSpec::Box {
                    low: l, high: h, ..
                },
                ..
            })
            | ModuleSpec::Sac(SacModuleSpec {
                low: l, high: h, ..
            }) => {
                *l = low.to_vec();
                *h = high.to_vec();
            }
            _ => {}
        }
    }

    /// A policy for acting with `weights` (the whole module's, or the inference part).
    pub fn policy(
        &self,
        weights: &Weights,
        cfg: &AlgorithmConfig,
    ) -> Result<Box<dyn Policy>, String> {
        let mapping = ActionMapping::from_flags(cfg.normalize_actions, cfg.clip_actions);
        Ok(match self {
            ModuleSpec::Ppo(s) | ModuleSpec::Bc(s) | ModuleSpec::Marwil(s) => {
                Box::new(PpoPolicy::new(s.clone(), weights)?.with_mapping(mapping))
            }
            ModuleSpec::Dqn(s) => Box::new(DqnPolicy::new(s, weights, cfg.dqn.epsilon.clone())?),
            ModuleSpec::Sac(s) => Box::new(
                SacPolicy::new(s, weights, mapping)?
                    .with_noise_correlation(cfg.sac.exploration_noise_correlation),
            ),
        })
    }

    /// The part of the whole module's weights a policy acts with.
    pub fn inference_part(&self, w: &Weights) -> Result<Weights, String> {
        match self {
            ModuleSpec::Ppo(_) | ModuleSpec::Bc(_) | ModuleSpec::Marwil(_) => Ok(w.clone()),
            ModuleSpec::Dqn(s) => s.net_spec().ordered(w),
            ModuleSpec::Sac(s) => s.pi_spec().ordered(w),
        }
    }

    /// One line describing it, for messages.
    pub fn describe(&self) -> String {
        let m = self.model();
        format!(
            "{} module, obs_dim {}, action_dim {}, fcnet_hiddens {:?}, fcnet_activation {}",
            self.algo(),
            self.obs_dim(),
            self.action_dim(),
            m.fcnet_hiddens,
            m.fcnet_activation.name()
        )
    }
}
