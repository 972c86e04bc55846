//! The fused CPU backend: an MLP's forward and backward written out over flat `f32` buffers,
//! matrix products by `matrixmultiply`'s SGEMM, no tensor framework's per-operation overhead
//! (which dominates for networks of this size). Buffers are sized on first use and reused:
//! a training step does not allocate.
//!
//! A batch is cut into blocks of [`block_rows`] rows; each block's gradient is computed on
//! its own scratch space and the blocks are summed in block order. With several learner
//! threads the blocks are shared out over them (a [`SpinPool`] kept for the learner's life and
//! shared by all its networks); since the blocks and their order do not depend on the thread
//! count, neither do the results: one thread and eight give the same bits.

use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use super::linalg::{activation_backward, add_assign, add_column_sums, gemm, linear_forward};
use super::spin_pool::{SpinPool, Task, panic_text};
use super::{Linear, NetSpec, Network, OptimizerStep, RowLoss, Weights};
use crate::config::Activation;
use crate::error::LearnerError;
use crate::optim::cut;

/// The most rows of a batch whose gradient is computed as one piece.
pub const BLOCK_ROWS: usize = 128;
/// The fewest: small minibatches are cut into blocks of at least this many rows, so that
/// they too spread over the learner's threads.
pub const MIN_BLOCK_ROWS: usize = 64;
/// Elements per part when element-wise work over parameters (summing the blocks' gradients,
/// Adam) is shared out over threads (see [`Threads::runs`]).
pub const PART: usize = 512;
/// Below this many rows per thread, an inference pass is not split.
const MIN_ROWS_PER_THREAD: usize = 64;

/// Rows per block for a batch of `rows`: up to [`BLOCK_ROWS`], and at least two blocks
/// where [`MIN_BLOCK_ROWS`] allows. It depends on the batch alone (never on the thread
/// count), which keeps results independent of the threads. Two blocks of 64 rows rather than
/// four of 32 for a 128-row minibatch: on two cores the larger products run SGEMM faster
/// (PPO at RLlib's defaults: 1.69× the compute limit against 2.03×, in one
/// `cargo bench -p algorithms --bench compute_limit` run of each).
pub fn block_rows(rows: usize) -> usize {
    rows.div_ceil(2).clamp(MIN_BLOCK_ROWS, BLOCK_ROWS)
}

/// Activations of one stack of layers for a block: `acts[0]` is its input, `acts[i + 1]`
/// layer i's output; `grads[i]` the gradient w.r.t. `acts[i]`.
#[derive(Debug, Default)]
struct Stack {
    acts: Vec<Vec<f32>>,
    grads: Vec<Vec<f32>>,
}

/// Scratch space of one block.
#[derive(Debug, Default)]
struct Workspace {
    trunk: Stack,
    /// Each head's hidden layers (`acts[0]` unused: a head's input is the trunk's output).
    heads: Vec<Stack>,
    /// The block's outputs, head by head.
    out: Vec<f32>,
    /// The gradient w.r.t. `out`.
    d_out: Vec<f32>,
    /// The gradient w.r.t. the trunk's output.
    d_trunk: Vec<f32>,
    /// The gradient w.r.t. the inputs.
    d_input: Vec<f32>,
    /// Parameter gradients of this block.
    grads: Vec<Vec<f32>>,
    /// A row loss's sums over this block.
    sums: Vec<f64>,
    /// Rows in this block.
    rows: usize,
}

/// The network and its parameters, read-only while a job runs.
#[derive(Debug)]
struct Net {
    spec: NetSpec,
    trunk: Vec<Linear>,
    heads: Vec<Vec<Linear>>,
    /// Offsets of each head within a row of outputs, and their total.
    offsets: Vec<usize>,
    out_dim: usize,
}

/// What the helper threads are asked to do.
#[derive(Default)]
enum JobKind {
    #[default]
    None,
    Infer(Vec<usize>),
    Forward,
    Backward {
        params: bool,
        input: bool,
    },
    Train(Arc<dyn RowLoss>),
}

/// A job and its inputs (copies of the caller's, for the helpers).
#[derive(Default)]
struct Job {
    kind: JobKind,
    input: Vec<f32>,
    d_out: Vec<f32>,
    rows: usize,
}

/// What a network's threads share.
struct Shared {
    net: Net,
    params: RwLock<Vec<Vec<f32>>>,
    /// Per thread (the caller's first): the workspaces of its blocks.
    scratch: Vec<RwLock<Vec<Workspace>>>,
    /// Per thread: the workspace of inference passes (kept apart, so that inference between
    /// a forward and its backward does not overwrite what backward needs).
    infer_scratch: Vec<Mutex<Workspace>>,
    job: RwLock<Job>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("spec", &self.net.spec)
            .field("threads", &self.scratch.len())
            .finish()
    }
}

/// A network on the fused CPU backend.
pub struct FusedNet {
    shared: Arc<Shared>,
    pool: Option<Arc<SpinPool>>,
    /// This network's job for the pool's helpers (made once: starting a job allocates
    /// nothing).
    task: Task,
    /// The last backward pass's gradients: the blocks' summed in block order.
    grads: Vec<Vec<f32>>,
    /// Rows of the last forward pass (what backward expects).
    forward_rows: usize,
    /// The threads' shares of element-wise work over the parameters ([`Threads::runs`]).
    runs: Vec<Vec<(usize, std::ops::Range<usize>)>>,
}

impl std::fmt::Debug for FusedNet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FusedNet")
            .field("spec", &self.shared.net.spec)
            .field("threads", &self.shared.scratch.len())
            .finish()
    }
}

/// Threads shared by the fused networks of one learner.
#[derive(Debug, Clone, Default)]
pub struct Threads {
    pool: Option<Arc<SpinPool>>,
}

impl Threads {
    /// `n` learner threads: the caller's and `n - 1` helpers.
    pub fn new(n: usize) -> Result<Self, LearnerError> {
        if n <= 1 {
            return Ok(Threads { pool: None });
        }
        let pool = SpinPool::new(n - 1, "rllib-learner")
            .map_err(|e| LearnerError::Threads(e.to_string()))?;
        Ok(Threads {
            pool: Some(Arc::new(pool)),
        })
    }

    /// How many threads work on a job (the caller's included).
    pub fn count(&self) -> usize {
        1 + self.pool.as_ref().map_or(0, |p| p.helpers())
    }

    /// Runs `f(t)` once on every learner thread `t` (the caller's is 0) and returns when
    /// all have returned: element-wise work over the parameters (Adam) shared out between
    /// network passes. A panic in `f` on any thread becomes an error, after every thread has
    /// left `f`.
    pub fn scoped(&self, f: &(dyn Fn(usize) + Sync)) -> Result<(), LearnerError> {
        let Some(pool) = &self.pool else {
            f(0);
            return Ok(());
        };
        // SAFETY: the helpers call `f` only between `start` and the end of `wait`, which
        // returns once every helper has finished its call and dropped its handle on the task
        // (a helper drops it before it counts itself done, panics included); the pool's own
        // handle is dropped by `wait` as well, and `task` below before this function returns.
        // So no call of `f` and no copy of the reference outlives this function, although the
        // task's type claims `'static`. The caller's own call is caught so that it cannot
        // unwind past `wait`.
        #[allow(unsafe_code)]
        let f_static: &'static (dyn Fn(usize) + Sync) = unsafe { std::mem::transmute(f) };
        let task: Task = Arc::new(f_static);
        pool.start(&task);
        let mine = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(0)));
        let helpers = pool.wait();
        drop(task);
        if let Err(p) = mine {
            return Err(LearnerError::Threads(format!(
                "learner thread 0: {}",
                panic_text(&*p)
            )));
        }
        helpers.map_err(LearnerError::Threads)
    }

    /// Shares element-wise work over tensors of `sizes` out to the threads: per thread, the
    /// pieces `(tensor, elements)` of one contiguous run of their concatenation, made of whole
    /// [`PART`]s (so that small tensors stay whole). Empty when one thread would do it all (a
    /// single thread, or fewer than two parts).
    pub fn runs(&self, sizes: &[usize]) -> Vec<Vec<(usize, std::ops::Range<usize>)>> {
        let n = self.count();
        let total: usize = sizes.iter().sum();
        let parts = total.div_ceil(PART);
        if n == 1 || parts < 2 {
            return Vec::new();
        }
        // Where thread t's run starts.
        let bounds: Vec<usize> = (0..=n).map(|t| (parts * t / n * PART).min(total)).collect();
        let mut runs: Vec<Vec<_>> = vec![Vec::new(); n];
        let mut at = 0;
        for (i, &size) in sizes.iter().enumerate() {
            let end = at + size;
            while at < end {
                let t = bounds.partition_point(|&b| b <= at) - 1;
                let stop = bounds[t + 1].min(end);
                runs[t].push((i, at + size - end..stop + size - end));
                at = stop;
            }
        }
        runs
    }

    /// Lets idle helpers sleep (between updates).
    pub fn rest(&self) {
        if let Some(p) = &self.pool {
            p.rest();
        }
    }
}

impl Net {
    fn new(spec: NetSpec) -> Self {
        let (trunk, heads) = spec.linears();
        let (offsets, out_dim) = spec.head_offsets();
        Net {
            spec,
            trunk,
            heads,
            offsets,
            out_dim,
        }
    }

    fn act(&self) -> Activation {
        self.spec.activation
    }

    /// Forward pass of a block: the trunk, then heads `which` (all when `None`), whose
    /// outputs go into `ws.out` head by head.
    fn forward(
        &self,
        p: &[Vec<f32>],
        ws: &mut Workspace,
        x: &[f32],
        rows: usize,
        which: Option<&[usize]>,
    ) {
        let d = self.spec.input_dim;
        ws.rows = rows;
        let t = &mut ws.trunk;
        t.acts.resize_with(self.trunk.len() + 1, Vec::new);
        t.acts[0].clear();
        t.acts[0].extend_from_slice(&x[..rows * d]);
        for (i, l) in self.trunk.iter().enumerate() {
            let (done, rest) = t.acts.split_at_mut(i + 1);
            let out = &mut rest[0];
            out.resize(rows * l.output, 0.0);
            linear_forward(&done[i], rows, &p[l.w], &p[l.b], self.act(), out);
        }
        ws.heads.resize_with(self.heads.len(), Stack::default);
        let all: Vec<usize>;
        let which = match which {
            Some(w) => w,
            None => {
                all = (0..self.heads.len()).collect();
                &all
            }
        };
        let width: usize = which.iter().map(|&h| self.spec.heads[h].out.size).sum();
        ws.out.resize(rows * width, 0.0);
        let h_in = ws.trunk.acts.last().map_or(&[][..], Vec::as_slice);
        let mut off = 0;
        for &h in which {
            let layers = &self.heads[h];
            let act = self.spec.head_activation(h);
            let stack = &mut ws.heads[h];
            stack.acts.resize_with(layers.len(), Vec::new);
            let (hidden, out_layer) = layers.split_at(layers.len() - 1);
            for (j, l) in hidden.iter().enumerate() {
                let (done, rest) = stack.acts.split_at_mut(j + 1);
                let input = if j == 0 { h_in } else { &done[j] };
                let out = &mut rest[0];
                out.resize(rows * l.output, 0.0);
                linear_forward(input, rows, &p[l.w], &p[l.b], act, out);
            }
            let l = out_layer[0];
            let input = if hidden.is_empty() {
                h_in
            } else {
                &stack.acts[hidden.len()]
            };
            let out = &mut ws.out[off * rows..(off + l.output) * rows];
            linear_forward(input, rows, &p[l.w], &p[l.b], Activation::Linear, out);
            off += l.output;
        }
    }

    /// Backward pass of a block whose forward ran over every head, from `ws.d_out`: parameter
    /// gradients into `ws.grads` when `params`, the input gradient into `ws.d_input` when
    /// `input`.
    fn backward(&self, p: &[Vec<f32>], ws: &mut Workspace, params: bool, input: bool) {
        let rows = ws.rows;
        let act = self.act();
        if params {
            ws.grads.resize_with(p.len(), Vec::new);
            for (g, q) in ws.grads.iter_mut().zip(p) {
                // Weights are overwritten by their product; biases accumulate column sums.
                g.resize(q.len(), 0.0);
            }
            for l in self.trunk.iter().chain(self.heads.iter().flatten()) {
                ws.grads[l.b].fill(0.0);
            }
        }
        let trunk_dim = self.spec.trunk_dim();
        let need_trunk = !self.trunk.is_empty() || input;
        ws.d_trunk.resize(rows * trunk_dim, 0.0);
        let mut first_into_trunk = true;
        let Workspace {
            trunk,
            heads,
            d_out,
            d_trunk,
            d_input,
            grads,
            ..
        } = ws;
        let h_in: &[f32] = trunk.acts.last().map_or(&[][..], Vec::as_slice);
        for (h, layers) in self.heads.iter().enumerate() {
            let head_act = self.spec.head_activation(h);
            let off = self.offsets[h];
            let size = self.spec.heads[h].out.size;
            let stack = &mut heads[h];
            stack.grads.resize_with(layers.len(), Vec::new);
            let n = layers.len();
            for j in (0..n).rev() {
                let l = layers[j];
                let x: &[f32] = if j == 0 { h_in } else { &stack.acts[j] };
                // dZ of layer j: the head's output gradient for the output layer, else the
                // gradient w.r.t. hidden layer j's output times the activation's derivative.
                let (lower, upper) = stack.grads.split_at_mut(j + 1);
                let dz: &[f32] = if j + 1 == n {
                    &d_out[off * rows..(off + size) * rows]
                } else {
                    let g = &mut upper[0];
                    activation_backward(head_act, &stack.acts[j + 1], g);
                    g
                };
                if params {
                    gemm(
                        l.output,
                        rows,
                        l.input,
                        dz,
                        true,
                        x,
                        false,
                        0.0,
                        &mut grads[l.w],
                    );
                    add_column_sums(dz, &mut grads[l.b]);
                }
                if j > 0 {
                    let dh = &mut lower[j];
                    dh.resize(rows * l.input, 0.0);
                    gemm(rows, l.output, l.input, dz, false, &p[l.w], false, 0.0, dh);
                } else if need_trunk {
                    let beta = if first_into_trunk { 0.0 } else { 1.0 };
                    gemm(
                        rows, l.output, l.input, dz, false, &p[l.w], false, beta, d_trunk,
                    );
                    first_into_trunk = false;
                }
            }
        }
        if first_into_trunk {
            d_trunk.fill(0.0);
        }
        // The trunk, from the gradient w.r.t. its output.
        let nt = self.trunk.len();
        if nt == 0 {
            if input {
                d_input.clear();
                d_input.extend_from_slice(d_trunk);
            }
            return;
        }
        trunk.grads.resize_with(nt + 1, Vec::new);
        std::mem::swap(&mut trunk.grads[nt], d_trunk);
        for i in (0..nt).rev() {
            let l = self.trunk[i];
            let (lower, upper) = trunk.grads.split_at_mut(i + 1);
            let dz = &mut upper[0];
            activation_backward(act, &trunk.acts[i + 1], dz);
            if params {
                gemm(
                    l.output,
                    rows,
                    l.input,
                    dz,
                    true,
                    &trunk.acts[i],
                    false,
                    0.0,
                    &mut grads[l.w],
                );
                add_column_sums(dz, &mut grads[l.b]);
            }
            if i > 0 || input {
                let dh = &mut lower[i];
                dh.resize(rows * l.input, 0.0);
                gemm(rows, l.output, l.input, dz, false, &p[l.w], false, 0.0, dh);
            }
        }
        std::mem::swap(&mut trunk.grads[nt], d_trunk);
        if input {
            d_input.clear();
            d_input.extend_from_slice(&trunk.grads[0]);
        }
    }
}

/// Rows `r` of a head-by-head output matrix of `rows` rows, into `dst` (head by head).
fn gather_rows(
    src: &[f32],
    rows: usize,
    sizes: &[usize],
    r: std::ops::Range<usize>,
    dst: &mut Vec<f32>,
) {
    dst.clear();
    let mut off = 0;
    for &s in sizes {
        dst.extend_from_slice(&src[(off * rows + r.start * s)..(off * rows + r.end * s)]);
        off += s;
    }
}

/// Writes a block's head-by-head rows `r` into the full matrix `dst` of `rows` rows.
fn scatter_rows(
    src: &[f32],
    rows: usize,
    sizes: &[usize],
    r: std::ops::Range<usize>,
    dst: &mut [f32],
) {
    let (mut off, mut at) = (0, 0);
    let n = r.len();
    for &s in sizes {
        dst[(off * rows + r.start * s)..(off * rows + r.end * s)]
            .copy_from_slice(&src[at..at + n * s]);
        off += s;
        at += n * s;
    }
}

impl Shared {
    fn threads(&self) -> usize {
        self.scratch.len()
    }

    /// Thread `t`'s blocks of a batch of `rows`: a contiguous run, so that reading the
    /// threads in order reads the blocks in order.
    fn blocks_of(&self, t: usize, rows: usize) -> std::ops::Range<usize> {
        let nb = rows.div_ceil(block_rows(rows)).max(1);
        let per = nb.div_ceil(self.threads());
        (t * per).min(nb)..((t + 1) * per).min(nb)
    }

    fn block_range(rows: usize, b: usize) -> std::ops::Range<usize> {
        let br = block_rows(rows);
        (b * br).min(rows)..((b + 1) * br).min(rows)
    }

    /// Whether a job over `rows` rows gives work to a thread other than the caller's.
    fn needs_helpers(&self, kind: &JobKind, rows: usize) -> bool {
        if self.threads() < 2 {
            return false;
        }
        match kind {
            JobKind::None => false,
            JobKind::Infer(_) => !self.rows_of(1, rows).is_empty(),
            _ => !self.blocks_of(1, rows).is_empty(),
        }
    }

    /// Thread `t`'s rows of an inference pass over `rows`.
    fn rows_of(&self, t: usize, rows: usize) -> std::ops::Range<usize> {
        let parts = self.threads().min(rows / MIN_ROWS_PER_THREAD).max(1);
        let per = rows.div_ceil(parts);
        (t * per).min(rows)..((t + 1) * per).min(rows)
    }

    /// Thread `t`'s share of `kind` on `input` (`rows` rows).
    fn work(
        &self,
        t: usize,
        kind: &JobKind,
        input: &[f32],
        d_out: &[f32],
        rows: usize,
        p: &[Vec<f32>],
    ) {
        let net = &self.net;
        let d = net.spec.input_dim;
        match kind {
            JobKind::None => {}
            JobKind::Infer(heads) => {
                let r = self.rows_of(t, rows);
                if !r.is_empty() {
                    let mut ws = self.infer_scratch[t].lock();
                    net.forward(p, &mut ws, &input[r.start * d..], r.len(), Some(heads));
                }
            }
            JobKind::Forward | JobKind::Train(_) => {
                let blocks = self.blocks_of(t, rows);
                let mut ws = self.scratch[t].write();
                if ws.len() < blocks.len() {
                    ws.resize_with(blocks.len(), Workspace::default);
                }
                for (w, b) in ws.iter_mut().zip(blocks) {
                    let r = Self::block_range(rows, b);
                    net.forward(p, w, &input[r.start * d..], r.len(), None);
                    if let JobKind::Train(loss) = kind {
                        w.d_out.resize(w.out.len(), 0.0);
                        w.sums.clear();
                        w.sums.resize(loss.num_sums(), 0.0);
                        loss.block(r.start, r.len(), &w.out, &mut w.d_out, &mut w.sums);
                        net.backward(p, w, true, false);
                    }
                }
            }
            JobKind::Backward { params, input } => {
                let blocks = self.blocks_of(t, rows);
                let sizes = net.spec.head_sizes();
                let mut ws = self.scratch[t].write();
                for (w, b) in ws.iter_mut().zip(blocks) {
                    let r = Self::block_range(rows, b);
                    let mut d = std::mem::take(&mut w.d_out);
                    gather_rows(d_out, rows, &sizes, r, &mut d);
                    w.d_out = d;
                    net.backward(p, w, *params, *input);
                }
            }
        }
    }

    /// A helper thread's part of the current job.
    fn run_job(&self, t: usize) {
        let job = self.job.read();
        let params = self.params.read();
        self.work(t, &job.kind, &job.input, &job.d_out, job.rows, &params);
    }
}

impl FusedNet {
    /// A network of `spec` with `weights`, on `threads` (shared with the learner's other
    /// networks).
    pub fn new(spec: NetSpec, weights: &Weights, threads: &Threads) -> Result<Self, LearnerError> {
        spec.check(weights).map_err(LearnerError::Mismatch)?;
        let params = weights.data();
        let zeros: Vec<Vec<f32>> = params.iter().map(|p| vec![0.0; p.len()]).collect();
        let n = threads.count();
        let shared = Arc::new(Shared {
            net: Net::new(spec),
            params: RwLock::new(params),
            scratch: (0..n).map(|_| RwLock::new(Vec::new())).collect(),
            infer_scratch: (0..n).map(|_| Mutex::new(Workspace::default())).collect(),
            job: RwLock::new(Job::default()),
        });
        let helper = Arc::clone(&shared);
        let task: Task = Arc::new(move |t| helper.run_job(t));
        let sizes: Vec<usize> = zeros.iter().map(Vec::len).collect();
        Ok(FusedNet {
            shared,
            pool: threads.pool.clone(),
            task,
            grads: zeros,
            forward_rows: 0,
            runs: threads.runs(&sizes),
        })
    }

    /// Runs `kind` on every thread: the caller's share here while the helpers run theirs.
    fn run(
        &mut self,
        kind: JobKind,
        input: &[f32],
        d_out: &[f32],
        rows: usize,
    ) -> Result<(), LearnerError> {
        let sh = &*self.shared;
        match &self.pool {
            // A job small enough for one thread runs on the caller's alone: waking helpers
            // for nothing costs more than the job (and, when processes share the cores,
            // waits for helpers that are not running).
            Some(pool) if sh.needs_helpers(&kind, rows) => {
                {
                    let mut job = sh.job.write();
                    job.input.clear();
                    // A backward pass needs no input: its forward's is in the workspaces.
                    if !input.is_empty() {
                        job.input
                            .extend_from_slice(&input[..rows * sh.net.spec.input_dim]);
                    }
                    job.d_out.clear();
                    job.d_out.extend_from_slice(d_out);
                    job.rows = rows;
                    job.kind = kind;
                }
                pool.start(&self.task);
                {
                    let job = sh.job.read();
                    sh.work(0, &job.kind, input, d_out, rows, &sh.params.read());
                }
                let done = pool.wait().map_err(LearnerError::Threads);
                // Drop the job's loss, so that its owner may reuse it.
                sh.job.write().kind = JobKind::None;
                done
            }
            _ => {
                sh.work(0, &kind, input, d_out, rows, &sh.params.read());
                Ok(())
            }
        }
    }

    /// Sums the blocks' parameter gradients (and a loss's sums) in block order, the
    /// gradients' elements shared out over the threads ([`Threads::runs`]): each element is
    /// the same sum on any thread.
    fn sum_blocks(&mut self, rows: usize, sums: Option<&mut Vec<f64>>) -> Result<(), LearnerError> {
        let sh = &*self.shared;
        // The blocks in order: each thread's, as (thread, how many of its workspaces hold one).
        let blocks: Vec<(usize, usize)> = (0..sh.threads())
            .map(|t| (t, sh.blocks_of(t, rows).len()))
            .collect();
        if let Some(s) = sums {
            let mut first = true;
            for &(t, nb) in &blocks {
                for w in sh.scratch[t].read().iter().take(nb) {
                    if first {
                        s.clear();
                        s.resize(w.sums.len(), 0.0);
                        first = false;
                    }
                    s.iter_mut().zip(&w.sums).for_each(|(a, b)| *a += b);
                }
            }
        }
        let add = |run: &[(usize, std::ops::Range<usize>)], out: &mut [&mut [f32]]| {
            let mut first = true;
            for &(t, nb) in &blocks {
                for w in sh.scratch[t].read().iter().take(nb) {
                    for ((i, r), g) in run.iter().zip(out.iter_mut()) {
                        let bg = &w.grads[*i][r.clone()];
                        if first {
                            g.copy_from_slice(bg);
                        } else {
                            add_assign(g, bg);
                        }
                    }
                    first = false;
                }
            }
        };
        if self.runs.is_empty() {
            let whole: Vec<(usize, std::ops::Range<usize>)> = self
                .grads
                .iter()
                .enumerate()
                .map(|(i, g)| (i, 0..g.len()))
                .collect();
            let mut out: Vec<&mut [f32]> = self.grads.iter_mut().map(Vec::as_mut_slice).collect();
            add(&whole, &mut out);
            return Ok(());
        }
        let threads = self.threads();
        let shares: Vec<Mutex<Vec<&mut [f32]>>> = cut(&mut self.grads, &self.runs)
            .into_iter()
            .map(Mutex::new)
            .collect();
        let runs = &self.runs;
        threads.scoped(&|t| add(&runs[t], &mut shares[t].lock()))
    }

    /// The network's threads (for a learner's other networks).
    pub fn threads(&self) -> Threads {
        Threads {
            pool: self.pool.clone(),
        }
    }
}

impl Network for FusedNet {
    fn spec(&self) -> &NetSpec {
        &self.shared.net.spec
    }

    fn infer(
        &mut self,
        input: &[f32],
        rows: usize,
        heads: &[usize],
        out: &mut Vec<f32>,
    ) -> Result<(), LearnerError> {
        out.clear();
        if rows == 0 {
            return Ok(());
        }
        self.run(JobKind::Infer(heads.to_vec()), input, &[], rows)?;
        let sh = &*self.shared;
        let sizes: Vec<usize> = heads
            .iter()
            .map(|&h| sh.net.spec.heads[h].out.size)
            .collect();
        out.resize(rows * sizes.iter().sum::<usize>(), 0.0);
        for (t, ws) in sh.infer_scratch.iter().enumerate() {
            let r = sh.rows_of(t, rows);
            if !r.is_empty() {
                scatter_rows(&ws.lock().out, rows, &sizes, r, out);
            }
        }
        Ok(())
    }

    fn forward(
        &mut self,
        input: &[f32],
        rows: usize,
        out: &mut Vec<f32>,
    ) -> Result<(), LearnerError> {
        self.run(JobKind::Forward, input, &[], rows)?;
        self.forward_rows = rows;
        let sh = &*self.shared;
        let sizes = sh.net.spec.head_sizes();
        out.clear();
        out.resize(rows * sh.net.out_dim, 0.0);
        for (t, scratch) in sh.scratch.iter().enumerate() {
            let ws = scratch.read();
            for (w, b) in ws.iter().zip(sh.blocks_of(t, rows)) {
                scatter_rows(&w.out, rows, &sizes, Shared::block_range(rows, b), out);
            }
        }
        Ok(())
    }

    fn backward(
        &mut self,
        d_out: &[f32],
        params: bool,
        d_input: Option<&mut Vec<f32>>,
    ) -> Result<(), LearnerError> {
        let rows = self.forward_rows;
        let sh = Arc::clone(&self.shared);
        if d_out.len() != rows * sh.net.out_dim {
            return Err(LearnerError::Mismatch(format!(
                "backward: {} output gradients for {rows} rows of {} outputs",
                d_out.len(),
                sh.net.out_dim
            )));
        }
        // The forward's inputs are still in the blocks' workspaces; helpers need no copy.
        let input = d_input.is_some();
        self.run(JobKind::Backward { params, input }, &[], d_out, rows)?;
        if params {
            self.sum_blocks(rows, None)?;
        }
        if let Some(di) = d_input {
            let d = sh.net.spec.input_dim;
            di.clear();
            di.resize(rows * d, 0.0);
            for (t, scratch) in sh.scratch.iter().enumerate() {
                let ws = scratch.read();
                for (w, b) in ws.iter().zip(sh.blocks_of(t, rows)) {
                    let r = Shared::block_range(rows, b);
                    di[r.start * d..r.end * d].copy_from_slice(&w.d_input[..r.len() * d]);
                }
            }
        }
        Ok(())
    }

    fn train_rows(
        &mut self,
        input: &[f32],
        rows: usize,
        loss: Arc<dyn RowLoss>,
    ) -> Result<Vec<f64>, LearnerError> {
        let n = loss.num_sums();
        self.run(JobKind::Train(loss), input, &[], rows)?;
        let mut sums = vec![0.0; n];
        self.sum_blocks(rows, Some(&mut sums))?;
        Ok(sums)
    }

    fn grads(&self) -> Result<Vec<Vec<f32>>, LearnerError> {
        Ok(self.grads.clone())
    }

    fn update(&mut self, step: &mut OptimizerStep<'_>) -> Result<(), LearnerError> {
        step(&mut self.shared.params.write(), &self.grads);
        Ok(())
    }

    fn weights(&self) -> Result<Weights, LearnerError> {
        let params = self.shared.params.read();
        Ok(Weights {
            tensors: self
                .shared
                .net
                .spec
                .parameter_shapes()
                .into_iter()
                .zip(params.iter())
                .map(|((name, shape), d)| super::NamedTensor {
                    name,
                    shape,
                    data: d.clone(),
                })
                .collect(),
        })
    }

    fn weights_into(&self, out: &mut Weights) -> Result<(), LearnerError> {
        let params = self.shared.params.read();
        let fits = out.tensors.len() == params.len()
            && out
                .tensors
                .iter()
                .zip(params.iter())
                .all(|(t, p)| t.data.len() == p.len());
        if !fits {
            drop(params);
            *out = self.weights()?;
            return Ok(());
        }
        for (t, p) in out.tensors.iter_mut().zip(params.iter()) {
            t.data.copy_from_slice(p);
        }
        Ok(())
    }

    fn set_weights(&mut self, w: &Weights) -> Result<(), LearnerError> {
        self.shared
            .net
            .spec
            .check(w)
            .map_err(LearnerError::Mismatch)?;
        let mut params = self.shared.params.write();
        for (p, t) in params.iter_mut().zip(&w.tensors) {
            p.copy_from_slice(&t.data);
        }
        Ok(())
    }

    fn end_update(&mut self) {
        if let Some(p) = &self.pool {
            p.rest();
        }
    }
}
