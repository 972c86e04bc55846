//! PPO's pieces against hand computations: GAE, the loss, and the two forward paths.

use algorithms::gae::compute_gae;
use algorithms::ppo::{ActionSpec, Dist, PpoLoss, PpoModuleSpec, PpoPolicy};
use algorithms::{
    Activation, AlgorithmConfig, Fragment, LearnerBackendKind, ModelConfig, NamedTensor,
    PpoLearner, Weights,
};

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol * (1.0 + b.abs())
}

#[test]
fn gae_bootstraps_on_truncation_and_not_on_termination() {
    // Two pieces of three steps: the first terminates, the second is truncated and
    // bootstraps from a final observation whose value is 2.0.
    let rewards = [1.0f32, 1.0, 1.0, 1.0, 1.0, 1.0];
    let values = [0.5f32, 0.4, 0.3, 0.5, 0.4, 0.3];
    let fragments = [
        Fragment {
            start: 0,
            end: 3,
            terminated: true,
            bootstrap: None,
            ..Default::default()
        },
        Fragment {
            start: 3,
            end: 6,
            terminated: false,
            bootstrap: Some(0),
            ..Default::default()
        },
    ];
    let (adv, targets) = compute_gae(&fragments, &rewards, &values, &[2.0], 0.9, 0.8);
    // By hand: delta_t = r_t + 0.9 V_{t+1} - V_t, A_t = delta_t + 0.72 A_{t+1}.
    // Terminated: deltas 0.86, 0.87, 0.7 → A = 1.84928, 1.374, 0.7.
    // Truncated (V_boot = 2): deltas 0.86, 0.87, 2.5 → A = 2.7824, 2.67, 2.5.
    let expected = [1.84928, 1.374, 0.7, 2.7824, 2.67, 2.5];
    for (a, e) in adv.iter().zip(expected) {
        assert!(close(f64::from(*a), e, 1e-6), "{adv:?}");
    }
    for ((t, a), v) in targets.iter().zip(&adv).zip(values) {
        assert!(close(f64::from(*t), f64::from(a + v), 1e-7));
    }
    // A piece cut by the end of sampling bootstraps the same way as a truncated one.
    let cut = [Fragment {
        start: 0,
        end: 1,
        terminated: false,
        bootstrap: Some(0),
        ..Default::default()
    }];
    let (adv, _) = compute_gae(&cut, &[0.0], &[1.0], &[3.0], 0.5, 1.0);
    assert!(close(f64::from(adv[0]), 0.5 * 3.0 - 1.0, 1e-7));
}

/// A network with no hidden layers: logits = W_pi x + b_pi, value = w_vf·x + b_vf.
fn tiny() -> (PpoModuleSpec, Weights) {
    let spec = PpoModuleSpec {
        obs_dim: 2,
        action: ActionSpec::Discrete(2),
        model: ModelConfig {
            fcnet_hiddens: vec![],
            fcnet_activation: Activation::Linear,
            vf_share_layers: true,
            ..Default::default()
        },
    };
    let t = |name: &str, shape: Vec<usize>, data: Vec<f32>| NamedTensor {
        name: name.to_string(),
        shape,
        data,
    };
    let w = Weights {
        tensors: vec![
            t("pi.weight", vec![2, 2], vec![0.5, -0.25, 0.1, 0.3]),
            t("pi.bias", vec![2], vec![0.05, -0.05]),
            t("vf.weight", vec![1, 2], vec![0.2, 0.4]),
            t("vf.bias", vec![1], vec![0.1]),
        ],
    };
    (spec, w)
}

#[test]
fn ppo_loss_matches_a_hand_computation() {
    let (spec, w) = tiny();
    let cfg = AlgorithmConfig {
        ppo: algorithms::config::PpoConfig {
            clip_param: 0.2,
            vf_clip_param: 0.5,
            vf_loss_coeff: 0.7,
            entropy_coeff: 0.01,
            use_kl_loss: true,
            ..Default::default()
        },
        ..Default::default()
    };
    let kl_coeff = 0.3;
    let obs = [1.0f32, 2.0, -1.0, 0.5, 0.0, -2.0];
    let actions = [0u32, 1, 1];
    let old_logits = [0.0f32, 0.2, 0.1, -0.3, 0.4, 0.4];
    let advantages = [1.0f32, -0.5, 2.0];
    let targets = [0.3f32, 2.0, -0.4];
    let old_logp: Vec<f32> = (0..3)
        .map(|i| {
            let l = &old_logits[i * 2..][..2];
            let z = (l[0].exp() + l[1].exp()).ln();
            l[actions[i] as usize] - z
        })
        .collect();

    // The same loss in f64, written out term by term.
    let (mut surr, mut vf, mut ent, mut kl) = (0.0, 0.0, 0.0, 0.0);
    for i in 0..3 {
        let (x0, x1) = (f64::from(obs[2 * i]), f64::from(obs[2 * i + 1]));
        let l0 = 0.5 * x0 - 0.25 * x1 + 0.05;
        let l1 = 0.1 * x0 + 0.3 * x1 - 0.05;
        let z = (l0.exp() + l1.exp()).ln();
        let lp = [l0 - z, l1 - z];
        let ol = [
            f64::from(old_logits[2 * i]),
            f64::from(old_logits[2 * i + 1]),
        ];
        let oz = (ol[0].exp() + ol[1].exp()).ln();
        let olp = [ol[0] - oz, ol[1] - oz];
        let a = actions[i] as usize;
        let ratio = (lp[a] - olp[a]).exp();
        let adv = f64::from(advantages[i]);
        surr += (adv * ratio).min(adv * ratio.clamp(0.8, 1.2));
        let v = 0.2 * x0 + 0.4 * x1 + 0.1;
        vf += ((v - f64::from(targets[i])).powi(2)).min(0.5);
        ent += -(lp[0].exp() * lp[0] + lp[1].exp() * lp[1]);
        kl += olp[0].exp() * (olp[0] - lp[0]) + olp[1].exp() * (olp[1] - lp[1]);
    }
    let n = 3.0;
    let (surr, vf, ent, kl) = (surr / n, vf / n, ent / n, kl / n);
    let total = -surr + 0.7 * vf - 0.01 * ent + kl_coeff * kl;

    let mut loss = PpoLoss::new(Dist::Categorical(2));
    loss.actions = actions.iter().map(|&a| a as f32).collect();
    loss.old_logp = old_logp;
    loss.old_dist_inputs = old_logits.to_vec();
    loss.advantages = advantages.to_vec();
    loss.value_targets = targets.to_vec();
    loss.clip_param = cfg.ppo.clip_param as f32;
    loss.vf_clip_param = cfg.ppo.vf_clip_param as f32;
    loss.vf_loss_coeff = cfg.ppo.vf_loss_coeff as f32;
    loss.entropy_coeff = cfg.ppo.entropy_coeff as f32;
    loss.kl_coeff = kl_coeff as f32;
    let mut learner = PpoLearner::new(cfg, spec, &w, 0).unwrap();
    let (got, grads) = learner.evaluate_loss(&obs, loss).unwrap();
    assert!(
        close(got.policy, -surr, 1e-5),
        "{} vs {}",
        got.policy,
        -surr
    );
    assert!(close(got.vf, vf, 1e-5), "{} vs {vf}", got.vf);
    assert!(close(got.entropy, ent, 1e-5), "{} vs {ent}", got.entropy);
    assert!(close(got.kl, kl, 1e-5), "{} vs {kl}", got.kl);
    assert!(close(got.total, total, 1e-5), "{} vs {total}", got.total);
    // The squared value errors of samples 0 and 1 (0.64, 3.61) exceed vf_clip_param: no
    // gradient flows through them, so d/d(vf.bias) is sample 2's 0.7 * 2 (v - t) / 3.
    let v2_minus_t = 0.2 * 0.0 + 0.4 * -2.0 + 0.1 + 0.4;
    let expected_bias_grad = 0.7 * 2.0 * v2_minus_t / 3.0;
    assert!(
        close(f64::from(grads[3][0]), expected_bias_grad, 1e-5),
        "{:?}",
        grads[3]
    );
}

/// PPO's Gaussian loss on `Box` actions against the same written out in f64: one action
/// dimension, a linear policy (mean = w·x + b) and a free log-std.
#[test]
fn gaussian_ppo_loss_matches_a_hand_computation() {
    let spec = PpoModuleSpec {
        obs_dim: 2,
        action: ActionSpec::Box {
            dim: 1,
            low: vec![-2.0],
            high: vec![2.0],
        },
        model: ModelConfig {
            fcnet_hiddens: vec![],
            fcnet_activation: Activation::Linear,
            vf_share_layers: true,
            ..Default::default()
        },
    };
    let t = |name: &str, shape: Vec<usize>, data: Vec<f32>| NamedTensor {
        name: name.to_string(),
        shape,
        data,
    };
    let log_std = -0.3f32;
    let w = Weights {
        tensors: vec![
            t("pi.weight", vec![1, 2], vec![0.5, -0.25]),
            t("pi.bias", vec![1], vec![0.05]),
            t("vf.weight", vec![1, 2], vec![0.2, 0.4]),
            t("vf.bias", vec![1], vec![0.1]),
            t("log_std", vec![1], vec![log_std]),
        ],
    };
    let obs = [1.0f32, 2.0, -1.0, 0.5, 0.0, -2.0];
    let actions = [0.3f32, -1.0, 0.8];
    let old = [(0.1f32, -0.2f32), (0.0, 0.0), (-0.3, 0.1)];
    let advantages = [1.0f32, -0.5, 2.0];
    let targets = [0.3f32, 2.0, -0.4];
    let old_logp: Vec<f32> = (0..3)
        .map(|i| {
            let (m, ls) = old[i];
            algorithms::distributions::gaussian_logp(&[actions[i]], &[m], &[ls])
        })
        .collect();
    let (clip, ent_c, kl_c) = (0.2, 0.01, 0.3);
    let (mut surr, mut ent, mut kl, mut d_ls) = (0.0, 0.0, 0.0, 0.0);
    let half_log_2pi = 0.5 * (2.0 * std::f64::consts::PI).ln();
    let ls = f64::from(log_std);
    for i in 0..3 {
        let (x0, x1) = (f64::from(obs[2 * i]), f64::from(obs[2 * i + 1]));
        let mean = 0.5 * x0 - 0.25 * x1 + 0.05;
        let a = f64::from(actions[i]);
        let z = (a - mean) / ls.exp();
        let logp = -0.5 * z * z - ls - half_log_2pi;
        let ratio = (logp - f64::from(old_logp[i])).exp();
        let adv = f64::from(advantages[i]);
        let s1 = adv * ratio;
        let s2 = adv * ratio.clamp(1.0 - clip, 1.0 + clip);
        surr += s1.min(s2);
        ent += ls + 0.5 + half_log_2pi;
        let (om, ols) = (f64::from(old[i].0), f64::from(old[i].1));
        kl += ls - ols + ((2.0 * ols).exp() + (om - mean).powi(2)) / (2.0 * (2.0 * ls).exp()) - 0.5;
        // d(-surrogate)/d log σ where the unclipped term is the smaller one.
        let through = s1 <= s2 || (ratio > 1.0 - clip && ratio < 1.0 + clip);
        let d_logp = if through { -adv * ratio } else { 0.0 };
        let kl_ls = 1.0 - ((2.0 * ols).exp() + (om - mean).powi(2)) / (2.0 * ls).exp();
        d_ls += d_logp * (z * z - 1.0) - ent_c + kl_c * kl_ls;
    }
    let n = 3.0;
    let (surr, ent, kl, d_ls) = (surr / n, ent / n, kl / n, d_ls / n);

    let mut loss = PpoLoss::new(Dist::Gaussian {
        dim: 1,
        log_std: vec![log_std],
    });
    loss.actions = actions.to_vec();
    loss.old_logp = old_logp;
    loss.old_dist_inputs = old.iter().flat_map(|&(m, l)| [m, l]).collect();
    loss.advantages = advantages.to_vec();
    loss.value_targets = targets.to_vec();
    loss.clip_param = clip as f32;
    loss.entropy_coeff = ent_c as f32;
    loss.kl_coeff = kl_c as f32;
    let mut learner = PpoLearner::new(AlgorithmConfig::default(), spec, &w, 0).unwrap();
    let (got, grads) = learner.evaluate_loss(&obs, loss).unwrap();
    assert!(
        close(got.policy, -surr, 1e-5),
        "{} vs {}",
        got.policy,
        -surr
    );
    assert!(close(got.entropy, ent, 1e-5), "{} vs {ent}", got.entropy);
    assert!(close(got.kl, kl, 1e-5), "{} vs {kl}", got.kl);
    let log_std_grad = grads.last().unwrap()[0];
    assert!(
        close(f64::from(log_std_grad), d_ls, 1e-4),
        "{log_std_grad} vs {d_ls}"
    );
}

#[test]
fn inference_and_learner_forward_paths_agree() {
    for (hiddens, act, shared, action) in [
        (vec![32], Activation::Linear, true, ActionSpec::Discrete(2)),
        (
            vec![64, 64],
            Activation::Tanh,
            false,
            ActionSpec::Discrete(2),
        ),
        (vec![16, 8], Activation::Relu, true, ActionSpec::Discrete(2)),
        (
            vec![16],
            Activation::Tanh,
            false,
            ActionSpec::Box {
                dim: 2,
                low: vec![-1.0; 2],
                high: vec![1.0; 2],
            },
        ),
    ] {
        let spec = PpoModuleSpec {
            obs_dim: 4,
            action,
            model: ModelConfig {
                fcnet_hiddens: hiddens,
                fcnet_activation: act,
                vf_share_layers: shared,
                ..Default::default()
            },
        };
        let w = spec.init(7);
        let obs: Vec<f32> = (0..40)
            .map(|i| ((i * 37 % 11) as f32 - 5.0) * 0.3)
            .collect();
        let head = spec.action.head_size();
        let mut policy = PpoPolicy::new(spec.clone(), &w).unwrap();
        let mut inputs = vec![0.0; 10 * spec.action.dist_width()];
        let mut values = vec![0.0; 10];
        policy.dist_inputs(&obs, 10, &mut inputs);
        policy.values(&obs, 10, &mut values);
        for backend in [LearnerBackendKind::Fused, LearnerBackendKind::Candle] {
            let cfg = AlgorithmConfig {
                learner_backend: backend,
                ..Default::default()
            };
            let mut learner = PpoLearner::new(cfg, spec.clone(), &w, 0).unwrap();
            let (heads, v2) = learner.forward(&obs, 10).unwrap();
            let w = spec.action.dist_width();
            for r in 0..10 {
                for (a, b) in inputs[r * w..][..head]
                    .iter()
                    .zip(&heads[r * head..][..head])
                {
                    assert!((a - b).abs() <= 1e-5 * (1.0 + b.abs()), "{a} vs {b}");
                }
                // A Gaussian's log-std follows its mean: the free parameter, 0 at first.
                assert!(inputs[r * w + head..(r + 1) * w].iter().all(|&v| v == 0.0));
            }
            for (a, b) in values.iter().zip(&v2) {
                assert!((a - b).abs() <= 1e-5 * (1.0 + b.abs()), "{a} vs {b}");
            }
        }
    }
}

#[test]
fn init_is_rllibs_normc() {
    let spec = PpoModuleSpec {
        obs_dim: 4,
        action: ActionSpec::Discrete(2),
        model: ModelConfig::default(),
    };
    let w = spec.init(1);
    spec.check(&w).unwrap();
    let row_norm = |name: &str| {
        let t = w.get(name).unwrap();
        let cols = t.shape[1];
        t.data[..cols].iter().map(|v| v * v).sum::<f32>().sqrt()
    };
    assert!((row_norm("pi_encoder.0.weight") - 1.0).abs() < 1e-5);
    assert!((row_norm("pi.weight") - 0.01).abs() < 1e-7);
    assert!((row_norm("vf.weight") - 0.01).abs() < 1e-7);
    assert_eq!(w, spec.init(1), "the same seed gives the same weights");
    assert_ne!(w, spec.init(2));
}
