//! The fused CPU backend and the candle backend compute the same network: outputs, parameter
//! gradients and input gradients agree within 1e-5 (relative) on random inputs, for the
//! shapes every algorithm uses. PPO's loss, written once, gives the same terms and gradients
//! on both, and PPO's, DQN's and SAC's updates move the weights alike on both. And the fused
//! backend gives the same bits on one learner thread as on several.

use std::sync::Arc;

use algorithms::dqn::{DqnLearner, DqnModuleSpec};
use algorithms::nn::candle::CandleNet;
use algorithms::nn::fused::{FusedNet, Threads};
use algorithms::nn::{HeadSpec, Init, LayerSpec, NetSpec, Network, RowLoss, Weights};
use algorithms::ppo::{ActionSpec, Dist, PpoLoss, PpoModuleSpec};
use algorithms::replay::ReplayBatch;
use algorithms::sac::{SacLearner, SacModuleSpec};
use algorithms::{Activation, Algo, AlgorithmConfig, LearnerBackendKind, ModelConfig, PpoLearner};
use envs::NpRandom;

fn close(a: f32, b: f32) -> bool {
    (a - b).abs() <= 1e-5 * a.abs().max(b.abs()) + 1e-6
}

fn assert_close(ctx: &str, a: &[f32], b: &[f32]) {
    assert_eq!(a.len(), b.len(), "{ctx}: lengths");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(close(*x, *y), "{ctx}[{i}]: {x} vs {y}");
    }
}

/// Gradients are sums over hundreds of rows with cancellations: they agree within 1e-5 of
/// the tensor's largest value.
fn assert_close_scaled(ctx: &str, a: &[f32], b: &[f32]) {
    assert_eq!(a.len(), b.len(), "{ctx}: lengths");
    let scale = b.iter().fold(0f32, |m, v| m.max(v.abs()));
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(
            (x - y).abs() <= 1e-5 * scale + 1e-6,
            "{ctx}[{i}]: {x} vs {y} (scale {scale})"
        );
    }
}

fn model(h: Vec<usize>, act: Activation, shared: bool) -> ModelConfig {
    ModelConfig {
        fcnet_hiddens: h,
        fcnet_activation: act,
        vf_share_layers: shared,
        ..Default::default()
    }
}

/// PPO modules of every kind, and the shapes DQN (trunk + heads with hidden layers) and SAC
/// (a critic on observations and actions) use.
fn nets() -> Vec<NetSpec> {
    let ppo = |obs, action, m| PpoModuleSpec {
        obs_dim: obs,
        action,
        model: m,
    };
    let mut v: Vec<NetSpec> = [
        ppo(
            4,
            ActionSpec::Discrete(2),
            model(vec![64, 64], Activation::Tanh, false),
        ),
        ppo(
            4,
            ActionSpec::Discrete(2),
            model(vec![32], Activation::Linear, true),
        ),
        ppo(
            6,
            ActionSpec::Discrete(3),
            model(vec![16, 8], Activation::Relu, true),
        ),
        ppo(
            3,
            ActionSpec::Discrete(4),
            model(vec![], Activation::Tanh, false),
        ),
        ppo(
            3,
            ActionSpec::Box {
                dim: 2,
                low: vec![-1.0; 2],
                high: vec![1.0; 2],
            },
            model(vec![32, 32], Activation::Tanh, false),
        ),
    ]
    .iter()
    .map(PpoModuleSpec::net_spec)
    .collect();
    v.push(NetSpec {
        input_dim: 5,
        activation: Activation::Relu,
        init: Init::TorchDefault,
        trunk: NetSpec::hidden_layers("encoder", &[24]),
        heads: vec![
            HeadSpec {
                hidden: vec![LayerSpec::new("af.0", 16, 1.0)],
                activation: Some(Activation::Tanh),
                out: LayerSpec::new("af", 3, 1.0),
            },
            HeadSpec {
                hidden: vec![LayerSpec::new("vf.0", 16, 1.0)],
                activation: None,
                out: LayerSpec::new("vf", 1, 1.0),
            },
        ],
    });
    v.push(NetSpec {
        input_dim: 4,
        activation: Activation::Relu,
        init: Init::TorchDefault,
        trunk: NetSpec::hidden_layers("encoder", &[32, 32]),
        heads: vec![HeadSpec {
            hidden: vec![],
            activation: None,
            out: LayerSpec::new("qf", 1, 1.0),
        }],
    });
    v
}

fn perturbed(spec: &NetSpec, seed: u64) -> Weights {
    // Perturbed weights, so that hidden units are not all tiny.
    let mut rng = NpRandom::from_seed(seed + 1000);
    let mut w = spec.init(seed);
    for t in &mut w.tensors {
        t.data
            .iter_mut()
            .for_each(|v| *v += rng.uniform(-0.3, 0.3) as f32);
    }
    w
}

fn random(n: usize, rng: &mut NpRandom) -> Vec<f32> {
    (0..n).map(|_| rng.uniform(-2.0, 2.0) as f32).collect()
}

fn fused(spec: &NetSpec, w: &Weights, threads: usize) -> FusedNet {
    FusedNet::new(spec.clone(), w, &Threads::new(threads).unwrap()).unwrap()
}

fn candle(spec: &NetSpec, w: &Weights) -> CandleNet {
    CandleNet::new(spec.clone(), w, candle_core::Device::Cpu).unwrap()
}

#[test]
fn forward_and_inference_agree() {
    for (s, spec) in nets().into_iter().enumerate() {
        let w = perturbed(&spec, s as u64);
        let mut rng = NpRandom::from_seed(9);
        let rows = 301;
        let x = random(rows * spec.input_dim, &mut rng);
        let mut c = candle(&spec, &w);
        let (mut want, mut got) = (Vec::new(), Vec::new());
        c.forward(&x, rows, &mut want).unwrap();
        let all: Vec<usize> = (0..spec.heads.len()).collect();
        let mut reference = None;
        for threads in [1, 2, 3] {
            let mut f = fused(&spec, &w, threads);
            f.forward(&x, rows, &mut got).unwrap();
            assert_close(&format!("net {s}, {threads} threads, forward"), &got, &want);
            let mut inferred = Vec::new();
            f.infer(&x, rows, &all, &mut inferred).unwrap();
            assert_eq!(inferred, got, "net {s}: inference is the forward pass");
            // Rows are independent: any split over threads gives the same bits.
            let reference = reference.get_or_insert(got.clone());
            assert_eq!(&got, reference, "net {s}, {threads} threads");
            // One head alone is that head's part of all outputs.
            let last = spec.heads.len() - 1;
            let mut one = Vec::new();
            f.infer(&x, rows, &[last], &mut one).unwrap();
            assert_eq!(one, got[got.len() - one.len()..], "net {s}");
        }
    }
}

#[test]
fn parameter_and_input_gradients_agree() {
    for (s, spec) in nets().into_iter().enumerate() {
        let w = perturbed(&spec, s as u64 + 7);
        let mut rng = NpRandom::from_seed(100 + s as u64);
        // Several blocks, the last one partial.
        let rows = 300;
        let x = random(rows * spec.input_dim, &mut rng);
        let d_out = random(rows * spec.out_dim(), &mut rng);
        let mut c = candle(&spec, &w);
        let mut out = Vec::new();
        c.forward(&x, rows, &mut out).unwrap();
        let mut want_dx = Vec::new();
        c.backward(&d_out, true, Some(&mut want_dx)).unwrap();
        let want = c.grads().unwrap();
        let mut one_thread: Option<(Vec<Vec<f32>>, Vec<f32>)> = None;
        for threads in [1, 2, 3] {
            let ctx = format!("net {s}, {threads} threads");
            let mut f = fused(&spec, &w, threads);
            f.forward(&x, rows, &mut out).unwrap();
            let mut dx = Vec::new();
            f.backward(&d_out, true, Some(&mut dx)).unwrap();
            let g = f.grads().unwrap();
            for (p, (a, b)) in g.iter().zip(&want).enumerate() {
                assert_close_scaled(&format!("{ctx}, parameter {p}"), a, b);
            }
            assert_close_scaled(&format!("{ctx}, input gradient"), &dx, &want_dx);
            match &one_thread {
                None => one_thread = Some((g, dx)),
                Some((g1, dx1)) => {
                    assert!(&g == g1 && &dx == dx1, "{ctx}: differs from one thread's");
                }
            }
        }
    }
}

fn ppo_case(spec: &PpoModuleSpec, rows: usize, seed: u64) -> (Vec<f32>, PpoLoss) {
    let mut rng = NpRandom::from_seed(seed);
    let obs = random(rows * spec.obs_dim, &mut rng);
    let (dist, ad, w) = match &spec.action {
        ActionSpec::Discrete(n) => (Dist::Categorical(*n), 1, *n),
        ActionSpec::Box { dim, .. } => (
            Dist::Gaussian {
                dim: *dim,
                log_std: (0..*dim).map(|_| rng.uniform(-0.5, 0.5) as f32).collect(),
            },
            *dim,
            2 * dim,
        ),
    };
    let mut loss = PpoLoss::new(dist);
    loss.actions = match &spec.action {
        ActionSpec::Discrete(n) => (0..rows).map(|_| rng.below(*n as u64) as f32).collect(),
        ActionSpec::Box { .. } => random(rows * ad, &mut rng),
    };
    loss.old_dist_inputs = (0..rows * w)
        .map(|_| rng.uniform(-1.0, 1.0) as f32)
        .collect();
    loss.old_logp = (0..rows).map(|_| rng.uniform(-2.0, -0.1) as f32).collect();
    loss.advantages = random(rows, &mut rng);
    loss.value_targets = random(rows, &mut rng);
    loss.clip_param = 0.2;
    loss.vf_clip_param = 2.0;
    loss.vf_loss_coeff = 0.5;
    loss.entropy_coeff = 0.01;
    loss.kl_coeff = 0.3;
    (obs, loss)
}

#[test]
fn ppo_losses_and_gradients_agree() {
    let specs = [
        PpoModuleSpec {
            obs_dim: 4,
            action: ActionSpec::Discrete(2),
            model: model(vec![64, 64], Activation::Tanh, false),
        },
        PpoModuleSpec {
            obs_dim: 6,
            action: ActionSpec::Discrete(3),
            model: model(vec![16, 8], Activation::Relu, true),
        },
        PpoModuleSpec {
            obs_dim: 3,
            action: ActionSpec::Box {
                dim: 2,
                low: vec![-2.0; 2],
                high: vec![2.0; 2],
            },
            model: model(vec![32], Activation::Tanh, false),
        },
    ];
    for (s, spec) in specs.iter().enumerate() {
        let w = spec.init(s as u64 + 3);
        let (obs, loss) = ppo_case(spec, 300, 40 + s as u64);
        let mut reference: Option<(algorithms::ppo::Terms, Vec<Vec<f32>>)> = None;
        for (backend, threads) in [
            (LearnerBackendKind::Candle, 1),
            (LearnerBackendKind::Fused, 1),
            (LearnerBackendKind::Fused, 2),
            (LearnerBackendKind::Fused, 3),
        ] {
            let cfg = AlgorithmConfig {
                learner_backend: backend,
                num_cpus_per_learner: Some(threads),
                ..Default::default()
            };
            let mut learner = PpoLearner::new(cfg, spec.clone(), &w, 0).unwrap();
            let (terms, grads) = learner.evaluate_loss(&obs, loss.clone()).unwrap();
            let ctx = format!("spec {s}, {backend:?}, {threads} threads");
            match &reference {
                None => reference = Some((terms, grads)),
                Some((t, g)) => {
                    for (name, x, y) in [
                        ("total", terms.total, t.total),
                        ("policy", terms.policy, t.policy),
                        ("vf", terms.vf, t.vf),
                        ("entropy", terms.entropy, t.entropy),
                        ("kl", terms.kl, t.kl),
                    ] {
                        assert!(close(x as f32, y as f32), "{ctx}: {name} {x} vs {y}");
                    }
                    for (p, (a, b)) in grads.iter().zip(g).enumerate() {
                        assert_close_scaled(&format!("{ctx}, parameter {p}"), a, b);
                    }
                }
            }
        }
    }
}

/// A loss that records which rows each block saw, to check the block split.
struct Spy(std::sync::Mutex<Vec<(usize, usize)>>);

impl RowLoss for Spy {
    fn num_sums(&self) -> usize {
        1
    }
    fn block(&self, first: usize, rows: usize, out: &[f32], d_out: &mut [f32], sums: &mut [f64]) {
        self.0.lock().unwrap().push((first, rows));
        d_out.fill(0.0);
        sums[0] += out.len() as f64;
    }
}

#[test]
fn small_batches_are_cut_into_blocks_whatever_the_threads() {
    let spec = nets().remove(1);
    let w = spec.init(1);
    let x = vec![0.5f32; 128 * spec.input_dim];
    for threads in [1, 2] {
        let spy = Arc::new(Spy(std::sync::Mutex::new(Vec::new())));
        let mut f = fused(&spec, &w, threads);
        let sums = f.train_rows(&x, 128, spy.clone()).unwrap();
        let mut seen = spy.0.lock().unwrap().clone();
        seen.sort_unstable();
        // 128 rows: two blocks of 64, so that two threads share them.
        assert_eq!(seen, [(0, 64), (64, 64)]);
        assert_eq!(sums[0], (128 * spec.out_dim()) as f64);
    }
}

#[test]
fn one_ppo_update_agrees() {
    let spec = PpoModuleSpec {
        obs_dim: 4,
        action: ActionSpec::Box {
            dim: 1,
            low: vec![-1.0],
            high: vec![1.0],
        },
        model: model(vec![64, 64], Activation::Tanh, false),
    };
    let w = spec.init(3);
    let mut weights = Vec::new();
    for backend in [LearnerBackendKind::Fused, LearnerBackendKind::Candle] {
        let cfg = AlgorithmConfig {
            learner_backend: backend,
            grad_clip: Some(0.5),
            train_batch_size: 64,
            lr: 1e-3,
            ppo: algorithms::config::PpoConfig {
                minibatch_size: 32,
                num_epochs: 3,
                ..Default::default()
            },
            ..Default::default()
        };
        let mut learner = PpoLearner::new(cfg, spec.clone(), &w, 7).unwrap();
        let mut rng = NpRandom::from_seed(4);
        let rows = 64;
        let mut batch = algorithms::SampleBatch::new(4, 1, 2);
        batch.obs = (0..rows * 4)
            .map(|_| rng.uniform(-1.0, 1.0) as f32)
            .collect();
        batch.actions = (0..rows).map(|_| rng.uniform(-1.0, 1.0) as f32).collect();
        batch.rewards = (0..rows).map(|_| rng.uniform(0.0, 1.0) as f32).collect();
        batch.action_dist_inputs = (0..rows).flat_map(|_| [0.0f32, 0.0]).collect();
        batch.action_logp = batch
            .actions
            .iter()
            .map(|&a| algorithms::distributions::gaussian_logp(&[a], &[0.0], &[0.0]))
            .collect();
        batch.fragments = vec![algorithms::Fragment {
            start: 0,
            end: rows,
            terminated: true,
            bootstrap: None,
            ..Default::default()
        }];
        learner.update(&batch, 0).unwrap();
        weights.push(learner.weights().unwrap());
    }
    for (t1, t2) in weights[0].tensors.iter().zip(&weights[1].tensors) {
        assert_eq!(t1.name, t2.name);
        for (x, y) in t1.data.iter().zip(&t2.data) {
            assert!((x - y).abs() < 1e-5, "{}: {x} vs {y}", t1.name);
        }
    }
}

/// A replayed minibatch of random transitions (actions from `action`).
fn replay_batch(
    rows: usize,
    obs_dim: usize,
    seed: u64,
    action: impl Fn(&mut NpRandom) -> Vec<f32>,
) -> ReplayBatch {
    let mut rng = NpRandom::from_seed(seed);
    let obs = random(rows * obs_dim, &mut rng);
    let next_obs = random(rows * obs_dim, &mut rng);
    ReplayBatch {
        obs,
        actions: (0..rows).flat_map(|_| action(&mut rng)).collect(),
        rewards: (0..rows).map(|_| rng.uniform(-1.0, 1.0) as f32).collect(),
        next_obs,
        terminated: (0..rows).map(|i| i % 5 == 0).collect(),
        n_steps: (0..rows).map(|i| 1 + (i % 3) as u32).collect(),
        weights: (0..rows).map(|_| rng.uniform(0.5, 1.0) as f32).collect(),
        indices: (0..rows as u32).collect(),
    }
}

fn assert_weights_agree(what: &str, a: &Weights, b: &Weights) {
    assert_eq!(a.tensors.len(), b.tensors.len());
    for (t1, t2) in a.tensors.iter().zip(&b.tensors) {
        assert_eq!(t1.name, t2.name);
        for (x, y) in t1.data.iter().zip(&t2.data) {
            assert!((x - y).abs() < 1e-5, "{what} {}: {x} vs {y}", t1.name);
        }
    }
}

#[test]
fn dqn_updates_agree() {
    for (dueling, double_q) in [(true, true), (false, false)] {
        let spec = DqnModuleSpec {
            obs_dim: 4,
            num_actions: 3,
            model: ModelConfig {
                head_fcnet_hiddens: vec![16],
                ..model(vec![32, 32], Activation::Tanh, false)
            },
            dueling,
        };
        let w = spec.init(5);
        let mut results = Vec::new();
        for backend in [LearnerBackendKind::Fused, LearnerBackendKind::Candle] {
            let mut cfg = AlgorithmConfig::new(Algo::Dqn);
            cfg.learner_backend = backend;
            cfg.dqn.double_q = double_q;
            cfg.off_policy.target_network_update_freq = 2;
            cfg.off_policy.tau = 0.5;
            let mut learner = DqnLearner::new(cfg, spec.clone(), &w).unwrap();
            let mut tds = Vec::new();
            for step in 0..4 {
                let batch = replay_batch(48, 4, step, |r| vec![r.below(3) as f32]);
                tds.push(learner.update(&batch, step * 3).unwrap().td_errors);
            }
            results.push((learner.weights().unwrap(), tds));
        }
        assert_weights_agree("DQN", &results[0].0, &results[1].0);
        for (a, b) in results[0].1.iter().zip(&results[1].1) {
            assert_close("DQN td errors", a, b);
        }
    }
}

#[test]
fn sac_updates_agree() {
    let spec = SacModuleSpec {
        obs_dim: 3,
        action_dim: 2,
        low: vec![-2.0, -1.0],
        high: vec![2.0, 1.0],
        model: model(vec![32, 32], Activation::Relu, false),
        twin_q: true,
    };
    let w = spec.init(8);
    let mut results = Vec::new();
    for backend in [LearnerBackendKind::Fused, LearnerBackendKind::Candle] {
        let mut cfg = AlgorithmConfig::new(Algo::Sac);
        cfg.learner_backend = backend;
        cfg.grad_clip = Some(5.0);
        let mut learner = SacLearner::new(cfg, spec.clone(), &w, 3).unwrap();
        let mut tds = Vec::new();
        for step in 0..4 {
            let batch = replay_batch(40, 3, 10 + step, |r| {
                vec![r.uniform(-1.0, 1.0) as f32, r.uniform(-1.0, 1.0) as f32]
            });
            tds.push(learner.update(&batch, step).unwrap().td_errors);
        }
        results.push((learner.weights().unwrap(), learner.log_alpha(), tds));
    }
    assert_weights_agree("SAC", &results[0].0, &results[1].0);
    assert!((results[0].1 - results[1].1).abs() < 1e-6);
    for (a, b) in results[0].2.iter().zip(&results[1].2) {
        assert_close("SAC td errors", a, b);
    }
}
