//! The fused CPU backend and the candle backend compute the same thing: forward outputs, the
//! loss terms and every gradient agree within 1e-5 (relative) on random inputs. And the fused
//! backend gives the same bits on one learner thread as on several.

use algorithms::fused::BLOCK_ROWS;
use algorithms::{
    Activation, AlgorithmConfig, CandleBackend, FusedBackend, LearnerBackend, MinibatchData,
    MinibatchStats, MlpSpec, ModelConfig, evaluate_loss,
};
use envs::NpRandom;

fn close(a: f32, b: f32) -> bool {
    (a - b).abs() <= 1e-5 * a.abs().max(b.abs()) + 1e-6
}

fn specs() -> Vec<MlpSpec> {
    let m = |h: Vec<usize>, act, shared| ModelConfig {
        fcnet_hiddens: h,
        fcnet_activation: act,
        vf_share_layers: shared,
    };
    vec![
        MlpSpec {
            obs_dim: 4,
            num_actions: 2,
            model: m(vec![64, 64], Activation::Tanh, false),
        },
        MlpSpec {
            obs_dim: 4,
            num_actions: 2,
            model: m(vec![32], Activation::Linear, true),
        },
        MlpSpec {
            obs_dim: 6,
            num_actions: 3,
            model: m(vec![16, 8], Activation::Relu, true),
        },
        MlpSpec {
            obs_dim: 3,
            num_actions: 4,
            model: m(vec![], Activation::Tanh, false),
        },
    ]
}

#[test]
fn forward_outputs_agree() {
    for (s, spec) in specs().into_iter().enumerate() {
        let w = spec.init(s as u64 + 1);
        let cfg = AlgorithmConfig::default();
        let fused = FusedBackend::new(&cfg, spec.clone(), &w).unwrap();
        let candle = CandleBackend::new(&cfg, spec.clone(), &w).unwrap();
        let mut rng = NpRandom::from_seed(9);
        let rows = 33;
        let obs: Vec<f32> = (0..rows * spec.obs_dim)
            .map(|_| rng.uniform(-2.0, 2.0) as f32)
            .collect();
        let (l1, v1) = fused.forward(&obs, rows).unwrap();
        let (l2, v2) = candle.forward(&obs, rows).unwrap();
        for (a, b) in l1.iter().zip(&l2).chain(v1.iter().zip(&v2)) {
            assert!(close(*a, *b), "spec {s}: {a} vs {b}");
        }
    }
}

#[test]
fn value_predictions_match_the_forward_pass_on_any_thread_count() {
    for (s, spec) in specs().into_iter().enumerate() {
        let w = spec.init(s as u64 + 1);
        let mut rng = NpRandom::from_seed(5);
        let rows = 301;
        let obs: Vec<f32> = (0..rows * spec.obs_dim)
            .map(|_| rng.uniform(-2.0, 2.0) as f32)
            .collect();
        let mut reference = None;
        for threads in [1, 2, 4] {
            let cfg = AlgorithmConfig {
                num_cpus_per_learner: Some(threads),
                ..Default::default()
            };
            let mut fused = FusedBackend::new(&cfg, spec.clone(), &w).unwrap();
            let values = fused.values(&obs, rows).unwrap();
            let (_, forward) = fused.forward(&obs, rows).unwrap();
            assert_eq!(values, forward, "spec {s}, {threads} threads");
            let reference = reference.get_or_insert(values.clone());
            assert_eq!(&values, reference, "spec {s}, {threads} threads");
        }
    }
}

#[test]
fn losses_and_gradients_agree() {
    for (s, spec) in specs().into_iter().enumerate() {
        for (case, (use_kl, entropy, grad_clip)) in [(true, 0.01, None), (false, 0.0, Some(0.5))]
            .into_iter()
            .enumerate()
        {
            let cfg = AlgorithmConfig {
                clip_param: 0.2,
                vf_clip_param: 2.0,
                vf_loss_coeff: 0.5,
                entropy_coeff: entropy,
                use_kl_loss: use_kl,
                grad_clip,
                ..Default::default()
            };
            let mut rng = NpRandom::from_seed(100 + s as u64 * 10 + case as u64);
            // Perturbed weights so that hidden units are not all tiny.
            let mut w = spec.init(s as u64 + 7);
            for t in &mut w.tensors {
                t.data
                    .iter_mut()
                    .for_each(|v| *v += rng.uniform(-0.3, 0.3) as f32);
            }
            // Three row blocks, the last one partial.
            let (rows, a, d) = (2 * BLOCK_ROWS + 44, spec.num_actions, spec.obs_dim);
            let obs: Vec<f32> = (0..rows * d)
                .map(|_| rng.uniform(-2.0, 2.0) as f32)
                .collect();
            let actions: Vec<u32> = (0..rows).map(|_| rng.below(a as u64) as u32).collect();
            let old_logits: Vec<f32> = (0..rows * a)
                .map(|_| rng.uniform(-1.0, 1.0) as f32)
                .collect();
            let old_logp: Vec<f32> = (0..rows)
                .map(|i| {
                    let l = &old_logits[i * a..][..a];
                    let z = l.iter().map(|v| v.exp()).sum::<f32>().ln();
                    l[actions[i] as usize] - z
                })
                .collect();
            let advantages: Vec<f32> = (0..rows).map(|_| rng.uniform(-2.0, 2.0) as f32).collect();
            let targets: Vec<f32> = (0..rows).map(|_| rng.uniform(-2.0, 2.0) as f32).collect();
            let mb = MinibatchData {
                obs: &obs,
                actions: &actions,
                old_logp: &old_logp,
                old_logits: &old_logits,
                advantages: &advantages,
                value_targets: &targets,
            };
            let reference = evaluate_loss(&cfg, spec.clone(), &w, 0.3, mb).unwrap();
            // One thread, and the minibatch's blocks shared out over two and three.
            let mut one_thread: Option<(MinibatchStats, Vec<Vec<f32>>)> = None;
            for threads in [1, 2, 3] {
                let cfg = AlgorithmConfig {
                    num_cpus_per_learner: Some(threads),
                    ..cfg.clone()
                };
                let mut fused = FusedBackend::new(&cfg, spec.clone(), &w).unwrap();
                let got = fused.loss_and_gradients(mb, 0.3).unwrap();
                let ctx = format!("spec {s} case {case} threads {threads}");
                for (name, x, y) in [
                    ("total", got.total, reference.total),
                    ("policy", got.policy, reference.policy),
                    ("vf", got.vf, reference.vf),
                    ("entropy", got.entropy, reference.entropy),
                    ("kl", got.kl, reference.kl),
                ] {
                    assert!(close(x as f32, y as f32), "{ctx}: {name} {x} vs {y}");
                }
                for (p, (g1, g2)) in fused.gradients().iter().zip(&reference.grads).enumerate() {
                    for (x, y) in g1.iter().zip(g2) {
                        assert!(close(*x, *y), "{ctx}: parameter {p}: {x} vs {y}");
                    }
                }
                match &one_thread {
                    None => one_thread = Some((got, fused.gradients().to_vec())),
                    Some((stats, grads)) => {
                        assert_eq!(&got, stats, "{ctx}: loss terms differ from one thread's");
                        assert!(
                            fused.gradients() == grads.as_slice(),
                            "{ctx}: gradients differ from one thread's"
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn one_update_step_agrees() {
    let spec = specs().remove(0);
    let cfg = AlgorithmConfig {
        grad_clip: Some(0.5),
        ..Default::default()
    };
    let w = spec.init(3);
    let mut fused = FusedBackend::new(&cfg, spec.clone(), &w).unwrap();
    let mut candle = CandleBackend::new(&cfg, spec.clone(), &w).unwrap();
    let mut rng = NpRandom::from_seed(4);
    let rows = 32;
    let obs: Vec<f32> = (0..rows * 4)
        .map(|_| rng.uniform(-1.0, 1.0) as f32)
        .collect();
    let actions: Vec<u32> = (0..rows).map(|_| rng.below(2) as u32).collect();
    let logits = vec![0.0f32; rows * 2];
    let logp = vec![(0.5f32).ln(); rows];
    let adv: Vec<f32> = (0..rows).map(|_| rng.uniform(-1.0, 1.0) as f32).collect();
    let tgt: Vec<f32> = (0..rows).map(|_| rng.uniform(-1.0, 1.0) as f32).collect();
    let mb = MinibatchData {
        obs: &obs,
        actions: &actions,
        old_logp: &logp,
        old_logits: &logits,
        advantages: &adv,
        value_targets: &tgt,
    };
    for _ in 0..3 {
        fused.train_minibatch(mb, 0.2, 1e-3).unwrap();
        candle.train_minibatch(mb, 0.2, 1e-3).unwrap();
    }
    let (a, b) = (fused.weights().unwrap(), candle.weights().unwrap());
    for (t1, t2) in a.tensors.iter().zip(&b.tensors) {
        for (x, y) in t1.data.iter().zip(&t2.data) {
            assert!((x - y).abs() < 1e-5, "{}: {x} vs {y}", t1.name);
        }
    }
}
