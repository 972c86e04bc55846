//! PPO's pieces against hand computations: GAE, the loss, and the two forward paths.

use algorithms::gae::compute_gae;
use algorithms::{
    Activation, AlgorithmConfig, Fragment, MinibatchData, MlpPolicy, MlpSpec, ModelConfig,
    NamedTensor, PpoLearner, Weights, evaluate_loss,
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
        },
        Fragment {
            start: 3,
            end: 6,
            terminated: false,
            bootstrap: Some(0),
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
    }];
    let (adv, _) = compute_gae(&cut, &[0.0], &[1.0], &[3.0], 0.5, 1.0);
    assert!(close(f64::from(adv[0]), 0.5 * 3.0 - 1.0, 1e-7));
}

/// A network with no hidden layers: logits = W_pi x + b_pi, value = w_vf·x + b_vf.
fn tiny() -> (MlpSpec, Weights) {
    let spec = MlpSpec {
        obs_dim: 2,
        num_actions: 2,
        model: ModelConfig {
            fcnet_hiddens: vec![],
            fcnet_activation: Activation::Linear,
            vf_share_layers: true,
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
        clip_param: 0.2,
        vf_clip_param: 0.5,
        vf_loss_coeff: 0.7,
        entropy_coeff: 0.01,
        use_kl_loss: true,
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

    let got = evaluate_loss(
        &cfg,
        spec,
        &w,
        kl_coeff,
        MinibatchData {
            obs: &obs,
            actions: &actions,
            old_logp: &old_logp,
            old_logits: &old_logits,
            advantages: &advantages,
            value_targets: &targets,
        },
    )
    .unwrap();
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
        close(f64::from(got.grads[3][0]), expected_bias_grad, 1e-5),
        "{:?}",
        got.grads[3]
    );
}

#[test]
fn inference_and_learner_forward_paths_agree() {
    for (hiddens, act, shared) in [
        (vec![32], Activation::Linear, true),
        (vec![64, 64], Activation::Tanh, false),
        (vec![16, 8], Activation::Relu, true),
    ] {
        let spec = MlpSpec {
            obs_dim: 4,
            num_actions: 2,
            model: ModelConfig {
                fcnet_hiddens: hiddens,
                fcnet_activation: act,
                vf_share_layers: shared,
            },
        };
        let w = spec.init(7);
        let obs: Vec<f32> = (0..40)
            .map(|i| ((i * 37 % 11) as f32 - 5.0) * 0.3)
            .collect();
        let mut policy = MlpPolicy::new(spec.clone(), &w).unwrap();
        let mut logits = vec![0.0; 20];
        let mut values = vec![0.0; 10];
        policy.forward_inference(&obs, 10, &mut logits);
        policy.values(&obs, 10, &mut values);
        let learner = PpoLearner::new(AlgorithmConfig::default(), spec, &w, 0).unwrap();
        let (l2, v2) = learner.forward(&obs, 10).unwrap();
        for (a, b) in logits.iter().zip(&l2).chain(values.iter().zip(&v2)) {
            assert!((a - b).abs() <= 1e-5 * (1.0 + b.abs()), "{a} vs {b}");
        }
    }
}

#[test]
fn init_is_rllibs_normc() {
    let spec = MlpSpec {
        obs_dim: 4,
        num_actions: 2,
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
