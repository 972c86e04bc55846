//! A fused CPU learner backend for small MLPs: forward, PPO loss, backward and Adam written
//! out over flat `f32` buffers, with the matrix products done by `matrixmultiply`'s SGEMM.
//!
//! It computes exactly what [`CandleBackend`](crate::candle_backend::CandleBackend) computes
//! (tested to agree on outputs and gradients), without a tensor framework's per-operation
//! overhead, which dominates for networks of this size. Buffers are sized on the first
//! minibatch and reused: the minibatch loop does not allocate.
//!
//! A minibatch is cut into blocks of [`BLOCK_ROWS`] rows; each block's gradient is computed
//! on its own scratch space and the blocks are summed in block order. With
//! `num_cpus_per_learner` above 1 the blocks are shared out over that many threads (a pool kept
//! for the backend's life), and since the blocks and their order do not depend on the thread
//! count, neither do the results: one thread and eight give the same bits.

use crate::config::{Activation, AlgorithmConfig};
use crate::learner::{LearnerBackend, LearnerError, MinibatchData, MinibatchStats, OptimizerState};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use crate::linalg::{
    activation_backward, add_assign, add_column_sums, gemm, linear_forward, simd_dispatch,
};
use crate::module::{MlpSpec, NamedTensor, Weights, log_sum_exp};
use crate::spin_pool::{SpinPool, Task};

/// One linear layer: indices of its weight and bias among the parameters, and its sizes.
#[derive(Debug, Clone, Copy)]
struct Layer {
    w: usize,
    b: usize,
    input: usize,
    output: usize,
}

/// Which parameters form which part of the network.
#[derive(Debug, Clone)]
struct Layout {
    pi_trunk: Vec<Layer>,
    /// Empty when the value head shares the policy's trunk.
    vf_trunk: Vec<Layer>,
    pi: Layer,
    vf: Layer,
}

impl Layout {
    fn new(spec: &MlpSpec) -> Self {
        let shapes = spec.parameter_shapes();
        let find = |name: &str| -> Layer {
            let w = shapes
                .iter()
                .position(|(n, _)| *n == format!("{name}.weight"));
            let b = shapes
                .iter()
                .position(|(n, _)| *n == format!("{name}.bias"));
            match (w, b) {
                (Some(w), Some(b)) => Layer {
                    w,
                    b,
                    input: shapes[w].1[1],
                    output: shapes[w].1[0],
                },
                _ => unreachable!("{name} is a layer of the spec"),
            }
        };
        let n = spec.model.fcnet_hiddens.len();
        let (pi_prefix, vf_prefix) = if spec.model.vf_share_layers {
            ("encoder", None)
        } else {
            ("pi_encoder", Some("vf_encoder"))
        };
        Layout {
            pi_trunk: (0..n).map(|i| find(&format!("{pi_prefix}.{i}"))).collect(),
            vf_trunk: vf_prefix.map_or_else(Vec::new, |p| {
                (0..n).map(|i| find(&format!("{p}.{i}"))).collect()
            }),
            pi: find("pi"),
            vf: find("vf"),
        }
    }
}

/// Activations of one trunk for a batch: `acts[0]` is the input, `acts[l]` layer l's output.
#[derive(Debug, Default)]
struct Trunk {
    acts: Vec<Vec<f32>>,
    /// Gradient buffers, one per activation.
    grads: Vec<Vec<f32>>,
}

/// Scratch space of one thread: activations, output gradients and parameter gradients.
#[derive(Debug, Default)]
struct Workspace {
    pi_trunk: Trunk,
    vf_trunk: Trunk,
    logits: Vec<f32>,
    values: Vec<f32>,
    d_logits: Vec<f32>,
    d_values: Vec<f32>,
    grads: Vec<Vec<f32>>,
    /// The loss terms' sums over this block's rows.
    sums: Sums,
}

/// Sums of the loss terms over a block of rows.
#[derive(Debug, Clone, Copy, Default)]
struct Sums {
    policy: f64,
    vf: f64,
    entropy: f64,
    kl: f64,
}

impl std::ops::AddAssign for Sums {
    fn add_assign(&mut self, o: Sums) {
        self.policy += o.policy;
        self.vf += o.vf;
        self.entropy += o.entropy;
        self.kl += o.kl;
    }
}

/// The network and its parameters, read-only during a minibatch.
#[derive(Clone, Copy)]
struct Net<'a> {
    cfg: &'a AlgorithmConfig,
    spec: &'a MlpSpec,
    layout: &'a Layout,
    params: &'a [Vec<f32>],
}

/// What the learner's threads share: the network, its parameters, each thread's scratch space
/// and the job at hand.
#[derive(Debug)]
struct Shared {
    cfg: AlgorithmConfig,
    spec: MlpSpec,
    layout: Layout,
    params: RwLock<Vec<Vec<f32>>>,
    /// Per learner thread (the caller's first): the workspaces of its row blocks (values
    /// passes use the first).
    scratch: Vec<Mutex<Vec<Workspace>>>,
    /// The job handed to the helper threads (a copy of the caller's inputs).
    job: RwLock<Job>,
}

/// A job for the helper threads.
#[derive(Debug, Default)]
struct Job {
    /// `Some(kl_coeff)`: a minibatch's loss and gradients; `None`: value predictions of `obs`.
    loss: Option<f64>,
    obs: Vec<f32>,
    actions: Vec<u32>,
    old_logp: Vec<f32>,
    old_logits: Vec<f32>,
    advantages: Vec<f32>,
    value_targets: Vec<f32>,
}

impl Job {
    fn minibatch(&self) -> MinibatchData<'_> {
        MinibatchData {
            obs: &self.obs,
            actions: &self.actions,
            old_logp: &self.old_logp,
            old_logits: &self.old_logits,
            advantages: &self.advantages,
            value_targets: &self.value_targets,
        }
    }

    fn set_minibatch(&mut self, mb: MinibatchData<'_>, kl_coeff: f64) {
        fn copy<T: Copy>(to: &mut Vec<T>, from: &[T]) {
            to.clear();
            to.extend_from_slice(from);
        }
        self.loss = Some(kl_coeff);
        copy(&mut self.obs, mb.obs);
        copy(&mut self.actions, mb.actions);
        copy(&mut self.old_logp, mb.old_logp);
        copy(&mut self.old_logits, mb.old_logits);
        copy(&mut self.advantages, mb.advantages);
        copy(&mut self.value_targets, mb.value_targets);
    }
}

/// The fused CPU backend.
#[derive(Debug)]
pub struct FusedBackend {
    shared: Arc<Shared>,
    exp_avg: Vec<Vec<f32>>,
    exp_avg_sq: Vec<Vec<f32>>,
    step: u64,
    /// The last minibatch's gradients: the blocks' gradients summed in block order.
    grads: Vec<Vec<f32>>,
    /// The threads beside the caller's (`num_cpus_per_learner - 1`), kept for the backend's
    /// life.
    pool: Option<SpinPool>,
}

const BETA1: f32 = 0.9;
const BETA2: f32 = 0.999;
const EPS: f32 = 1e-8;
/// Rows of a minibatch whose gradient is computed as one piece.
pub const BLOCK_ROWS: usize = 128;
/// Below this many rows per thread, a values pass is not split.
const MIN_ROWS_PER_THREAD: usize = 64;

impl Shared {
    fn threads(&self) -> usize {
        self.scratch.len()
    }

    fn net<'a>(&'a self, params: &'a [Vec<f32>]) -> Net<'a> {
        Net {
            cfg: &self.cfg,
            spec: &self.spec,
            layout: &self.layout,
            params,
        }
    }

    /// The row blocks of thread `t` for a minibatch of `rows`: a contiguous run, so that
    /// reading the threads in order reads the blocks in order.
    fn blocks_of(&self, t: usize, rows: usize) -> std::ops::Range<usize> {
        let nb = rows.div_ceil(BLOCK_ROWS).max(1);
        let per = nb.div_ceil(self.threads());
        (t * per).min(nb)..((t + 1) * per).min(nb)
    }

    /// The rows of thread `t` in a values pass over `rows`.
    fn rows_of(&self, t: usize, rows: usize) -> std::ops::Range<usize> {
        let parts = self.threads().min(rows / MIN_ROWS_PER_THREAD).max(1);
        let per = rows.div_ceil(parts);
        (t * per).min(rows)..((t + 1) * per).min(rows)
    }

    /// Thread `t`'s share of a minibatch: loss and gradients of its blocks.
    fn loss_share(&self, t: usize, mb: MinibatchData<'_>, kl_coeff: f64, params: &[Vec<f32>]) {
        let rows = mb.actions.len();
        let (d, a) = (self.spec.obs_dim, self.spec.num_actions);
        let blocks = self.blocks_of(t, rows);
        let mut ws = self.scratch[t].lock();
        if ws.len() < blocks.len() {
            ws.resize_with(blocks.len(), Workspace::default);
        }
        let net = self.net(params);
        for (w, b) in ws.iter_mut().zip(blocks) {
            let (s, e) = (b * BLOCK_ROWS, ((b + 1) * BLOCK_ROWS).min(rows));
            net.loss_and_gradients(w, block(&mb, d, a, s, e), kl_coeff, rows);
        }
    }

    /// Thread `t`'s share of a values pass, into the `values` of its first workspace.
    fn values_share(&self, t: usize, obs: &[f32], rows: usize, params: &[Vec<f32>]) {
        let d = self.spec.obs_dim;
        let r = self.rows_of(t, rows);
        let mut ws = self.scratch[t].lock();
        if ws.is_empty() {
            ws.push(Workspace::default());
        }
        self.net(params)
            .values(&mut ws[0], &obs[r.start * d..r.end * d], r.len());
    }

    /// A helper thread's part of the current job.
    fn run_job(&self, t: usize) {
        let job = self.job.read();
        let params = self.params.read();
        match job.loss {
            Some(kl_coeff) => self.loss_share(t, job.minibatch(), kl_coeff, &params),
            None => {
                let rows = job.obs.len() / self.spec.obs_dim.max(1);
                self.values_share(t, &job.obs, rows, &params);
            }
        }
    }
}

impl Net<'_> {
    fn linear(&self, l: Layer, x: &[f32], rows: usize, act: Activation, out: &mut [f32]) {
        linear_forward(x, rows, &self.params[l.w], &self.params[l.b], act, out);
    }

    fn run_trunk(&self, layers: &[Layer], trunk: &mut Trunk, obs: &[f32], rows: usize) {
        let d = self.spec.obs_dim;
        trunk.acts.resize_with(layers.len() + 1, Vec::new);
        trunk.acts[0].clear();
        trunk.acts[0].extend_from_slice(&obs[..rows * d]);
        for (i, &l) in layers.iter().enumerate() {
            let (done, rest) = trunk.acts.split_at_mut(i + 1);
            let out = &mut rest[0];
            out.resize(rows * l.output, 0.0);
            self.linear(l, &done[i], rows, self.spec.model.fcnet_activation, out);
        }
    }

    /// Value predictions only (what GAE needs), into `ws.values`.
    fn values(&self, ws: &mut Workspace, obs: &[f32], rows: usize) {
        let trunk = if self.layout.vf_trunk.is_empty() {
            self.run_trunk(&self.layout.pi_trunk, &mut ws.pi_trunk, obs, rows);
            &ws.pi_trunk
        } else {
            self.run_trunk(&self.layout.vf_trunk, &mut ws.vf_trunk, obs, rows);
            &ws.vf_trunk
        };
        ws.values.resize(rows, 0.0);
        let h = trunk.acts.last().map_or(&[][..], Vec::as_slice);
        self.linear(self.layout.vf, h, rows, Activation::Linear, &mut ws.values);
    }

    /// Forward pass over `rows` observations into `ws.logits` and `ws.values`.
    fn forward(&self, ws: &mut Workspace, obs: &[f32], rows: usize) {
        self.run_trunk(&self.layout.pi_trunk, &mut ws.pi_trunk, obs, rows);
        let shared = self.layout.vf_trunk.is_empty();
        if !shared {
            self.run_trunk(&self.layout.vf_trunk, &mut ws.vf_trunk, obs, rows);
        }
        let (a, lp, lv) = (self.spec.num_actions, self.layout.pi, self.layout.vf);
        ws.logits.resize(rows * a, 0.0);
        ws.values.resize(rows, 0.0);
        let h_pi = ws.pi_trunk.acts.last().map_or(&[][..], Vec::as_slice);
        self.linear(lp, h_pi, rows, Activation::Linear, &mut ws.logits);
        let h_vf = if shared {
            h_pi
        } else {
            ws.vf_trunk.acts.last().map_or(&[][..], Vec::as_slice)
        };
        self.linear(lv, h_vf, rows, Activation::Linear, &mut ws.values);
    }

    /// Backpropagates the gradient w.r.t. the trunk's last activation (in the trunk's last
    /// gradient buffer) through `layers`, accumulating parameter gradients into `grads`.
    fn backward_trunk(
        &self,
        layers: &[Layer],
        trunk: &mut Trunk,
        grads: &mut [Vec<f32>],
        rows: usize,
    ) {
        let act = self.spec.model.fcnet_activation;
        for (i, &l) in layers.iter().enumerate().rev() {
            // d(out of layer i) is trunk.grads[i + 1]; turn it into dZ in place.
            let (lower, upper) = trunk.grads.split_at_mut(i + 1);
            let dz = &mut upper[0];
            activation_backward(act, &trunk.acts[i + 1], dz);
            gemm(
                l.output,
                rows,
                l.input,
                dz,
                true,
                &trunk.acts[i],
                false,
                1.0,
                &mut grads[l.w],
            );
            add_column_sums(dz, &mut grads[l.b]);
            if i > 0 {
                let dh = &mut lower[i];
                dh.resize(rows * l.input, 0.0);
                gemm(
                    rows,
                    l.output,
                    l.input,
                    dz,
                    false,
                    &self.params[l.w],
                    false,
                    0.0,
                    dh,
                );
            }
        }
    }

    /// PPO's loss on a block of rows of a minibatch of `total_rows`, and its contribution to
    /// the gradient of the minibatch's mean loss (in `ws.grads`; the terms' sums in `ws.sums`).
    fn loss_and_gradients(
        &self,
        ws: &mut Workspace,
        mb: MinibatchData<'_>,
        kl_coeff: f64,
        total_rows: usize,
    ) {
        let rows = mb.actions.len();
        let a = self.spec.num_actions;
        self.forward(ws, mb.obs, rows);
        let cfg = self.cfg;
        let (clip_lo, clip_hi) = ((1.0 - cfg.clip_param) as f32, (1.0 + cfg.clip_param) as f32);
        let inv_b = 1.0 / total_rows as f32;
        let kl_w = if cfg.use_kl_loss {
            kl_coeff as f32
        } else {
            0.0
        };
        let (ent_c, vf_c, vf_clip) = (
            cfg.entropy_coeff as f32,
            cfg.vf_loss_coeff as f32,
            cfg.vf_clip_param as f32,
        );
        ws.d_logits.resize(rows * a, 0.0);
        ws.d_values.resize(rows, 0.0);
        let mut sums = Sums::default();
        // Softmax rows of up to 16 actions live on the stack.
        let (mut p, mut old_p) = ([0f32; 16], [0f32; 16]);
        assert!(
            a <= 16,
            "the fused learner supports at most 16 discrete actions"
        );
        for i in 0..rows {
            let z = &ws.logits[i * a..][..a];
            let logz = log_sum_exp(z);
            let oz = &mb.old_logits[i * a..][..a];
            let ologz = log_sum_exp(oz);
            let mut h = 0f32;
            let mut k = 0f32;
            for j in 0..a {
                let lp = z[j] - logz;
                p[j] = lp.exp();
                h -= p[j] * lp;
                let olp = oz[j] - ologz;
                old_p[j] = olp.exp();
                k += old_p[j] * (olp - lp);
            }
            let act = mb.actions[i] as usize;
            let logp = z[act] - logz;
            let ratio = (logp - mb.old_logp[i]).exp();
            let adv = mb.advantages[i];
            let clipped = ratio.clamp(clip_lo, clip_hi);
            let (t1, t2) = (adv * ratio, adv * clipped);
            let surrogate = t1.min(t2);
            // d surrogate / d ratio: through the smaller term; the clipped one is flat
            // outside the clip range.
            let through = t1 <= t2 || (ratio > clip_lo && ratio < clip_hi);
            let d_ratio = if through { adv } else { 0.0 };
            let d_logp = -d_ratio * ratio;
            let dz = &mut ws.d_logits[i * a..][..a];
            for j in 0..a {
                let lp = z[j] - logz;
                let one_hot = if j == act { 1.0 } else { 0.0 };
                let mut g = d_logp * (one_hot - p[j]);
                // d(-c·H)/dz_j = c·p_j (log p_j + H)
                g += ent_c * p[j] * (lp + h);
                g += kl_w * (p[j] - old_p[j]);
                dz[j] = g * inv_b;
            }
            let err = ws.values[i] - mb.value_targets[i];
            let sq = err * err;
            let vf_i = sq.clamp(0.0, vf_clip);
            ws.d_values[i] = if sq > 0.0 && sq < vf_clip {
                vf_c * 2.0 * err * inv_b
            } else {
                0.0
            };
            sums.policy -= f64::from(surrogate);
            sums.vf += f64::from(vf_i);
            sums.entropy += f64::from(h);
            sums.kl += f64::from(k);
        }

        // Backward: heads, then trunks.
        ws.grads.resize_with(self.params.len(), Vec::new);
        for (g, p) in ws.grads.iter_mut().zip(self.params) {
            g.clear();
            g.resize(p.len(), 0.0);
        }
        let (lp, lv) = (self.layout.pi, self.layout.vf);
        let shared = self.layout.vf_trunk.is_empty();
        let depth = self.layout.pi_trunk.len();
        let Workspace {
            pi_trunk: pi,
            vf_trunk: vft,
            d_logits,
            d_values,
            grads,
            ..
        } = ws;
        pi.grads.resize_with(depth + 1, Vec::new);
        vft.grads
            .resize_with(self.layout.vf_trunk.len() + 1, Vec::new);
        {
            let h_pi = &pi.acts[depth];
            gemm(
                lp.output,
                rows,
                lp.input,
                d_logits,
                true,
                h_pi,
                false,
                0.0,
                &mut grads[lp.w],
            );
            let h_vf = if shared { h_pi } else { &vft.acts[depth] };
            gemm(
                lv.output,
                rows,
                lv.input,
                d_values,
                true,
                h_vf,
                false,
                0.0,
                &mut grads[lv.w],
            );
        }
        add_column_sums(d_logits, &mut grads[lp.b]);
        grads[lv.b][0] = d_values.iter().sum();
        if depth > 0 {
            let dh = &mut pi.grads[depth];
            dh.resize(rows * lp.input, 0.0);
            gemm(
                rows,
                lp.output,
                lp.input,
                d_logits,
                false,
                &self.params[lp.w],
                false,
                0.0,
                dh,
            );
            let vf_dh = if shared {
                &mut pi.grads[depth]
            } else {
                &mut vft.grads[depth]
            };
            vf_dh.resize(rows * lv.input, 0.0);
            let beta = if shared { 1.0 } else { 0.0 };
            gemm(
                rows,
                lv.output,
                lv.input,
                d_values,
                false,
                &self.params[lv.w],
                false,
                beta,
                vf_dh,
            );
            self.backward_trunk(&self.layout.pi_trunk, pi, grads, rows);
            if !shared {
                self.backward_trunk(&self.layout.vf_trunk, vft, grads, rows);
            }
        }
        ws.sums = sums;
    }
}

simd_dispatch! {
    /// PyTorch's Adam on one tensor, the gradient first multiplied by `scale` (clipping);
    /// `k` is `[scale, lr, bias correction 1, bias correction 2]`.
    fn adam_update(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], k: [f32; 4]) {
        let [scale, lr, bc1, bc2] = k;
        for (((p, &g), m), v) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
            let g = g * scale;
            *m = BETA1 * *m + (1.0 - BETA1) * g;
            *v = BETA2 * *v + (1.0 - BETA2) * g * g;
            *p -= lr * (*m / bc1) / ((*v / bc2).sqrt() + EPS);
        }
    }
}

simd_dispatch! {
    /// The sum of squares of `x` in `f64`, over eight lanes summed in a fixed order.
    fn sum_of_squares(x: &[f32]) -> f64 {
        let mut acc = [0f64; 8];
        let chunks = x.chunks_exact(8);
        let tail: f64 = chunks.remainder().iter().map(|v| f64::from(*v) * f64::from(*v)).sum();
        for c in chunks {
            acc.iter_mut()
                .zip(c)
                .for_each(|(a, v)| *a += f64::from(*v) * f64::from(*v));
        }
        ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail
    }
}

/// Rows `start..end` of every column of a minibatch.
fn block<'a>(
    mb: &MinibatchData<'a>,
    d: usize,
    a: usize,
    start: usize,
    end: usize,
) -> MinibatchData<'a> {
    MinibatchData {
        obs: &mb.obs[start * d..end * d],
        actions: &mb.actions[start..end],
        old_logp: &mb.old_logp[start..end],
        old_logits: &mb.old_logits[start * a..end * a],
        advantages: &mb.advantages[start..end],
        value_targets: &mb.value_targets[start..end],
    }
}

impl FusedBackend {
    /// A backend for `spec` starting from `weights`, on `cfg.num_cpus_per_learner` threads.
    pub fn new(
        cfg: &AlgorithmConfig,
        spec: MlpSpec,
        weights: &Weights,
    ) -> Result<Self, LearnerError> {
        spec.check(weights).map_err(LearnerError::Mismatch)?;
        let params: Vec<Vec<f32>> = weights.tensors.iter().map(|t| t.data.clone()).collect();
        let zeros: Vec<Vec<f32>> = params.iter().map(|p| vec![0.0; p.len()]).collect();
        let threads = cfg.learner_threads();
        let shared = Arc::new(Shared {
            cfg: cfg.clone(),
            layout: Layout::new(&spec),
            spec,
            params: RwLock::new(params),
            scratch: (0..threads).map(|_| Mutex::new(Vec::new())).collect(),
            job: RwLock::new(Job::default()),
        });
        let pool = if threads > 1 {
            let helper = Arc::clone(&shared);
            let task: Task = Arc::new(move |t| helper.run_job(t));
            let pool = SpinPool::new(threads - 1, "rllib-learner", task)
                .map_err(|e| LearnerError::Threads(e.to_string()))?;
            Some(pool)
        } else {
            None
        };
        Ok(FusedBackend {
            shared,
            exp_avg: zeros.clone(),
            exp_avg_sq: zeros.clone(),
            grads: zeros,
            step: 0,
            pool,
        })
    }

    /// Runs a job on every thread: `mine` on the caller's while the helpers run theirs.
    fn run(&self, mine: impl FnOnce()) -> Result<(), LearnerError> {
        match &self.pool {
            Some(pool) => {
                pool.start();
                mine();
                pool.wait().map_err(LearnerError::Threads)
            }
            None => {
                mine();
                Ok(())
            }
        }
    }

    /// PPO's loss on one minibatch and the gradients of every parameter (then available from
    /// [`gradients`](Self::gradients)).
    pub fn loss_and_gradients(
        &mut self,
        mb: MinibatchData<'_>,
        kl_coeff: f64,
    ) -> Result<MinibatchStats, LearnerError> {
        let rows = mb.actions.len();
        let sh = &*self.shared;
        if self.pool.is_some() {
            sh.job.write().set_minibatch(mb, kl_coeff);
        }
        self.run(|| sh.loss_share(0, mb, kl_coeff, &sh.params.read()))?;
        // Sum the blocks in block order, whichever thread computed them.
        let mut sums = Sums::default();
        let mut first = true;
        for (t, scratch) in sh.scratch.iter().enumerate() {
            let ws = scratch.lock();
            for w in ws.iter().take(sh.blocks_of(t, rows).len()) {
                for (g, bg) in self.grads.iter_mut().zip(&w.grads) {
                    if first {
                        g.copy_from_slice(bg);
                    } else {
                        add_assign(g, bg);
                    }
                }
                first = false;
                sums += w.sums;
            }
        }
        let n = rows as f64;
        sums.policy /= n;
        sums.vf /= n;
        sums.entropy /= n;
        sums.kl /= n;
        let cfg = &sh.cfg;
        let mut total =
            sums.policy + cfg.vf_loss_coeff * sums.vf - cfg.entropy_coeff * sums.entropy;
        if cfg.use_kl_loss {
            total += kl_coeff * sums.kl;
        }
        let norm = self
            .grads
            .iter()
            .map(|g| sum_of_squares(g))
            .sum::<f64>()
            .sqrt();
        Ok(MinibatchStats {
            total,
            policy: sums.policy,
            vf: sums.vf,
            entropy: sums.entropy,
            kl: sums.kl,
            grad_norm: norm,
        })
    }

    /// The gradients of the last [`loss_and_gradients`](Self::loss_and_gradients), in the
    /// order of `MlpSpec::parameter_shapes`.
    pub fn gradients(&self) -> &[Vec<f32>] {
        &self.grads
    }

    fn adam_step(&mut self, lr: f64, scale: f32) {
        self.step += 1;
        let bc1 = 1.0 - f64::from(BETA1).powi(self.step.min(1 << 20) as i32);
        let bc2 = 1.0 - f64::from(BETA2).powi(self.step.min(1 << 20) as i32);
        let (bc1, bc2) = (bc1 as f32, bc2 as f32);
        let lr = lr as f32;
        let mut params = self.shared.params.write();
        for (((p, g), m), v) in params
            .iter_mut()
            .zip(&self.grads)
            .zip(&mut self.exp_avg)
            .zip(&mut self.exp_avg_sq)
        {
            adam_update(p, g, m, v, [scale, lr, bc1, bc2]);
        }
    }

    fn named(&self, data: &[Vec<f32>]) -> Vec<NamedTensor> {
        self.shared
            .spec
            .parameter_shapes()
            .into_iter()
            .zip(data)
            .map(|((name, shape), d)| NamedTensor {
                name,
                shape,
                data: d.clone(),
            })
            .collect()
    }
}

impl LearnerBackend for FusedBackend {
    fn forward(&self, obs: &[f32], rows: usize) -> Result<(Vec<f32>, Vec<f32>), LearnerError> {
        let mut ws = Workspace::default();
        let params = self.shared.params.read();
        self.shared.net(&params).forward(&mut ws, obs, rows);
        Ok((ws.logits, ws.values))
    }

    fn values(&mut self, obs: &[f32], rows: usize) -> Result<Vec<f32>, LearnerError> {
        // Rows are independent, so any split gives the same values.
        let sh = &*self.shared;
        if self.pool.is_some() {
            let mut job = sh.job.write();
            job.loss = None;
            job.obs.clear();
            job.obs.extend_from_slice(&obs[..rows * sh.spec.obs_dim]);
        }
        self.run(|| sh.values_share(0, obs, rows, &sh.params.read()))?;
        let mut out = Vec::with_capacity(rows);
        for (t, scratch) in sh.scratch.iter().enumerate() {
            if !sh.rows_of(t, rows).is_empty() {
                out.extend_from_slice(&scratch.lock()[0].values);
            }
        }
        Ok(out)
    }

    fn end_update(&mut self) {
        if let Some(pool) = &self.pool {
            pool.rest();
        }
    }

    fn train_minibatch(
        &mut self,
        mb: MinibatchData<'_>,
        kl_coeff: f64,
        lr: f64,
    ) -> Result<MinibatchStats, LearnerError> {
        let stats = self.loss_and_gradients(mb, kl_coeff)?;
        if !stats.total.is_finite() {
            return Err(LearnerError::NonFinite {
                stats,
                explanation: String::new(),
            });
        }
        let scale = match self.shared.cfg.grad_clip {
            Some(clip) if stats.grad_norm > clip => (clip / (stats.grad_norm + 1e-6)) as f32,
            _ => 1.0,
        };
        self.adam_step(lr, scale);
        Ok(stats)
    }

    fn weights(&self) -> Result<Weights, LearnerError> {
        Ok(Weights {
            tensors: self.named(&self.shared.params.read()),
        })
    }

    fn optimizer_state(&self) -> Result<OptimizerState, LearnerError> {
        Ok(OptimizerState {
            step: self.step,
            exp_avg: self.named(&self.exp_avg),
            exp_avg_sq: self.named(&self.exp_avg_sq),
        })
    }

    fn set_optimizer_state(&mut self, s: &OptimizerState) -> Result<(), LearnerError> {
        for part in [&s.exp_avg, &s.exp_avg_sq] {
            self.shared
                .spec
                .check(&Weights {
                    tensors: part.clone(),
                })
                .map_err(|e| LearnerError::Mismatch(format!("optimizer state: {e}")))?;
        }
        self.exp_avg = s.exp_avg.iter().map(|t| t.data.clone()).collect();
        self.exp_avg_sq = s.exp_avg_sq.iter().map(|t| t.data.clone()).collect();
        self.step = s.step;
        Ok(())
    }
}
