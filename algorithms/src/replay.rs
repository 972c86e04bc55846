//! The replay buffer of DQN and SAC (RLlib's `EpisodeReplayBuffer` and
//! `PrioritizedEpisodeReplayBuffer`): env steps kept in a ring of `capacity`, linked to the
//! next step of their episode, so that a sample draws a start step `t` and a length `n` and
//! returns `(o_t, a_t, Σ_k γ^k r_{t+k}, o_{t+n}, terminated)`, n-step returns computed at
//! sampling time as RLlib does. A draw whose n steps are not all in the buffer (the episode
//! goes on, or its start was overwritten) is drawn again.
//!
//! Prioritised replay samples step `i` with probability `p_i^α / Σ p^α` (a sum tree), weights
//! it by `(N·P(i))^-β` normalised by the largest weight, and takes new priorities
//! `max(|td|, 1e-12)` after each update; new steps get the largest priority seen.

use envs::NpRandom;

use crate::config::ReplayConfig;
use crate::sample_batch::SampleBatch;

/// Marks "no step" in a link.
const NONE: u32 = u32::MAX;

/// A sampled minibatch of n-step transitions.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReplayBatch {
    /// Observations `o_t`, rows × obs_dim.
    pub obs: Vec<f32>,
    /// Actions `a_t`, rows × action_dim.
    pub actions: Vec<f32>,
    /// Discounted n-step rewards.
    pub rewards: Vec<f32>,
    /// Observations `o_{t+n}` to bootstrap from, rows × obs_dim.
    pub next_obs: Vec<f32>,
    /// Whether the episode terminated within the n steps (no bootstrap).
    pub terminated: Vec<bool>,
    /// The n of each row (the bootstrap is discounted by γ^n).
    pub n_steps: Vec<u32>,
    /// Importance weights (1 for uniform replay).
    pub weights: Vec<f32>,
    /// The buffer slots sampled (for priority updates).
    pub indices: Vec<u32>,
}

impl ReplayBatch {
    /// Rows in the batch.
    pub fn len(&self) -> usize {
        self.rewards.len()
    }

    /// Whether it has no rows.
    pub fn is_empty(&self) -> bool {
        self.rewards.is_empty()
    }
}

/// Everything a buffer holds, as plain columns (what a checkpoint stores).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ReplayState {
    /// Values per observation.
    pub obs_dim: usize,
    /// Values per action.
    pub action_dim: usize,
    /// Slots.
    pub capacity: usize,
    /// Next slot to write.
    pub next: usize,
    /// Slots written (at most `capacity`).
    pub size: usize,
    /// Per slot: observation.
    pub obs: Vec<f32>,
    /// Per slot: action.
    pub actions: Vec<f32>,
    /// Per slot: reward.
    pub rewards: Vec<f32>,
    /// Per slot: the observation after the step.
    pub next_obs: Vec<f32>,
    /// Per slot: 1 if the episode terminated on this step, 2 if truncated, 0 otherwise.
    pub ends: Vec<u8>,
    /// Per slot: the episode's id.
    pub episode: Vec<u64>,
    /// Per slot: the step's index in its episode.
    pub step: Vec<u32>,
    /// Per slot: the slot of the episode's next step (`u32::MAX`: none yet).
    pub next_slot: Vec<u32>,
    /// Per slot: its priority (before the exponent α).
    pub priorities: Vec<f64>,
    /// The largest priority given so far.
    pub max_priority: f64,
    /// Per env of each runner: (episode id, slot of its last step) of the episode in progress.
    pub open: Vec<(u64, u32)>,
    /// The next episode id.
    pub next_episode: u64,
    /// The sampling generator's `(state, increment)`.
    pub rng: (u128, u128),
}

/// A binary tree of sums (and minima) over `2^k` leaves.
#[derive(Debug, Clone)]
struct Tree {
    leaves: usize,
    sum: Vec<f64>,
    min: Vec<f64>,
}

impl Tree {
    fn new(capacity: usize) -> Self {
        let leaves = capacity.next_power_of_two();
        Tree {
            leaves,
            sum: vec![0.0; 2 * leaves],
            min: vec![f64::INFINITY; 2 * leaves],
        }
    }

    fn set(&mut self, i: usize, v: f64) {
        let mut k = i + self.leaves;
        self.sum[k] = v;
        self.min[k] = if v > 0.0 { v } else { f64::INFINITY };
        while k > 1 {
            k /= 2;
            self.sum[k] = self.sum[2 * k] + self.sum[2 * k + 1];
            self.min[k] = self.min[2 * k].min(self.min[2 * k + 1]);
        }
    }

    fn total(&self) -> f64 {
        self.sum[1]
    }

    fn min(&self) -> f64 {
        self.min[1]
    }

    /// The leaf where the prefix sum passes `mass`.
    fn find(&self, mut mass: f64) -> usize {
        let mut k = 1;
        while k < self.leaves {
            if mass < self.sum[2 * k] || self.sum[2 * k + 1] <= 0.0 {
                k *= 2;
            } else {
                mass -= self.sum[2 * k];
                k = 2 * k + 1;
            }
        }
        k - self.leaves
    }
}

/// The replay buffer.
#[derive(Debug, Clone)]
pub struct ReplayBuffer {
    cfg: ReplayConfig,
    s: ReplayState,
    tree: Tree,
    rng: NpRandom,
}

/// How many draws a sample may reject before it gives up on a row.
const MAX_REDRAWS: usize = 1000;

impl ReplayBuffer {
    /// An empty buffer; `seed` drives sampling.
    pub fn new(cfg: ReplayConfig, obs_dim: usize, action_dim: usize, seed: u64) -> Self {
        let cap = cfg.capacity;
        let rng = NpRandom::from_seed(seed);
        ReplayBuffer {
            tree: Tree::new(cap),
            s: ReplayState {
                obs_dim,
                action_dim,
                capacity: cap,
                obs: vec![0.0; cap * obs_dim],
                actions: vec![0.0; cap * action_dim],
                rewards: vec![0.0; cap],
                next_obs: vec![0.0; cap * obs_dim],
                ends: vec![0; cap],
                episode: vec![0; cap],
                step: vec![0; cap],
                next_slot: vec![NONE; cap],
                priorities: vec![0.0; cap],
                max_priority: 1.0,
                rng: rng.to_state(),
                ..Default::default()
            },
            cfg,
            rng,
        }
    }

    /// Steps stored.
    pub fn len(&self) -> usize {
        self.s.size
    }

    /// Whether nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.s.size == 0
    }

    /// Adds a batch of one env runner whose envs are numbered from `stream` on (runner `i` of
    /// a run with `n` envs per runner passes `i × n`): each fragment is a piece of one env's
    /// episode (its `env` field says which); a piece that continues an episode of an earlier
    /// call is linked to it, so that n-step returns span sample calls.
    pub fn add(&mut self, batch: &SampleBatch, stream: usize) {
        let (d, ad) = (self.s.obs_dim, self.s.action_dim);
        for f in &batch.fragments {
            let env = stream + f.env;
            if self.s.open.len() <= env {
                self.s.open.resize(env + 1, (u64::MAX, NONE));
            }
            let (mut episode, mut prev) = self.s.open[env];
            if f.starts_episode || episode == u64::MAX {
                episode = self.s.next_episode;
                self.s.next_episode += 1;
                prev = NONE;
            }
            let step = if prev == NONE || !self.alive(prev, episode) {
                prev = NONE;
                f.first_step
            } else {
                self.s.step[prev as usize] + 1
            };
            for (r, step) in (f.start..f.end).zip(step..) {
                let slot = self.s.next;
                // Overwriting a slot cuts its episode's chain there (followers see it by id).
                self.s.obs[slot * d..(slot + 1) * d]
                    .copy_from_slice(&batch.obs[r * d..(r + 1) * d]);
                self.s.actions[slot * ad..(slot + 1) * ad]
                    .copy_from_slice(&batch.actions[r * ad..(r + 1) * ad]);
                self.s.rewards[slot] = batch.rewards[r];
                let next = if r + 1 < f.end {
                    &batch.obs[(r + 1) * d..(r + 2) * d]
                } else {
                    match f.bootstrap {
                        Some(b) => &batch.bootstrap_obs[b * d..(b + 1) * d],
                        // A terminal step: its next observation is never used.
                        None => &batch.obs[r * d..(r + 1) * d],
                    }
                };
                self.s.next_obs[slot * d..(slot + 1) * d].copy_from_slice(next);
                let last = r + 1 == f.end;
                self.s.ends[slot] = match (last && f.terminated, last && f.truncated) {
                    (true, _) => 1,
                    (false, true) => 2,
                    _ => 0,
                };
                self.s.episode[slot] = episode;
                self.s.step[slot] = step;
                self.s.next_slot[slot] = NONE;
                if prev != NONE {
                    self.s.next_slot[prev as usize] = slot as u32;
                }
                let p = self.s.max_priority;
                self.s.priorities[slot] = p;
                self.tree.set(slot, p.powf(self.cfg.alpha));
                prev = slot as u32;
                self.s.next = (slot + 1) % self.s.capacity;
                self.s.size = (self.s.size + 1).min(self.s.capacity);
            }
            let done = f.terminated || f.truncated;
            self.s.open[env] = if done {
                (u64::MAX, NONE)
            } else {
                (episode, prev)
            };
        }
    }

    /// Whether `slot` still holds a step of `episode`.
    fn alive(&self, slot: u32, episode: u64) -> bool {
        let s = slot as usize;
        s < self.s.size && self.s.episode[s] == episode
    }

    /// The slot `k` steps after `slot` in its episode, if all of them are stored.
    fn follow(&self, slot: usize, k: usize) -> Option<usize> {
        let (ep, mut step, mut cur) = (self.s.episode[slot], self.s.step[slot], slot);
        for _ in 0..k {
            let next = self.s.next_slot[cur];
            if next == NONE {
                return None;
            }
            let n = next as usize;
            if self.s.episode[n] != ep || self.s.step[n] != step + 1 {
                return None;
            }
            cur = n;
            step += 1;
        }
        Some(cur)
    }

    /// Draws one slot.
    fn draw(&mut self) -> usize {
        if self.cfg.prioritized {
            let mass = self.rng.random() * self.tree.total();
            self.tree.find(mass).min(self.s.size - 1)
        } else {
            self.rng.below(self.s.size as u64) as usize
        }
    }

    /// Samples `rows` n-step transitions (n from `n_step`: `lo == hi` fixed, else drawn
    /// from `lo..hi`), discounting by `gamma`. Empty when nothing complete can be drawn.
    pub fn sample(
        &mut self,
        rows: usize,
        n_step: (usize, usize),
        gamma: f32,
        beta: f64,
    ) -> ReplayBatch {
        let (d, ad) = (self.s.obs_dim, self.s.action_dim);
        let mut b = ReplayBatch::default();
        if self.s.size == 0 {
            return b;
        }
        let (total, min) = (self.tree.total(), self.tree.min());
        let n_stored = self.s.size as f64;
        // (N · p_min)^-β: the largest weight, by which every weight is divided.
        let max_w = if self.cfg.prioritized && total > 0.0 {
            (n_stored * min / total).powf(-beta)
        } else {
            1.0
        };
        for _ in 0..rows {
            let mut found = None;
            for _ in 0..MAX_REDRAWS {
                let t = self.draw();
                let n = if n_step.0 == n_step.1 {
                    n_step.0
                } else {
                    n_step.0 + self.rng.below((n_step.1 - n_step.0) as u64) as usize
                };
                // The n steps t .. t+n-1 must be stored; an episode that ends earlier ends
                // the return there.
                let mut cur = t;
                let mut k = 1;
                let mut ok = true;
                while k < n && self.s.ends[cur] == 0 {
                    match self.follow(cur, 1) {
                        Some(next) => {
                            cur = next;
                            k += 1;
                        }
                        None => {
                            ok = false;
                            break;
                        }
                    }
                }
                if ok && (k == n || self.s.ends[cur] != 0) {
                    found = Some((t, cur, k));
                    break;
                }
            }
            let Some((t, last, k)) = found else {
                continue;
            };
            let mut ret = 0f32;
            let mut disc = 1f32;
            let mut cur = t;
            for i in 0..k {
                ret += disc * self.s.rewards[cur];
                disc *= gamma;
                if i + 1 < k {
                    cur = self.follow(cur, 1).unwrap_or(cur);
                }
            }
            b.obs.extend_from_slice(&self.s.obs[t * d..(t + 1) * d]);
            b.actions
                .extend_from_slice(&self.s.actions[t * ad..(t + 1) * ad]);
            b.rewards.push(ret);
            b.next_obs
                .extend_from_slice(&self.s.next_obs[last * d..(last + 1) * d]);
            b.terminated.push(self.s.ends[last] == 1);
            b.n_steps.push(k as u32);
            let w = if self.cfg.prioritized && total > 0.0 {
                let p = self.s.priorities[t].powf(self.cfg.alpha) / total;
                ((n_stored * p).powf(-beta) / max_w) as f32
            } else {
                1.0
            };
            b.weights.push(w);
            b.indices.push(t as u32);
        }
        b
    }

    /// New priorities `max(|td|, 1e-12)` for the rows of the last sample.
    pub fn update_priorities(&mut self, indices: &[u32], td_errors: &[f32]) {
        if !self.cfg.prioritized {
            return;
        }
        for (&i, &td) in indices.iter().zip(td_errors) {
            let p = f64::from(td.abs()).max(1e-12);
            self.s.priorities[i as usize] = p;
            self.tree.set(i as usize, p.powf(self.cfg.alpha));
            self.s.max_priority = self.s.max_priority.max(p);
        }
    }

    /// The buffer's state (for checkpoints).
    pub fn state(&self) -> ReplayState {
        ReplayState {
            rng: self.rng.to_state(),
            ..self.s.clone()
        }
    }

    /// A buffer from a saved state; errors when the state does not fit together.
    pub fn from_state(cfg: ReplayConfig, s: ReplayState) -> Result<Self, String> {
        let cap = s.capacity;
        let fits = cap > 0
            && s.obs.len() == cap * s.obs_dim
            && s.next_obs.len() == cap * s.obs_dim
            && s.actions.len() == cap * s.action_dim
            && [s.rewards.len(), s.ends.len(), s.episode.len(), s.step.len()]
                .iter()
                .all(|&n| n == cap)
            && s.next_slot.len() == cap
            && s.priorities.len() == cap
            && s.size <= cap
            && s.next < cap;
        if !fits {
            return Err(format!(
                "the replay buffer's columns do not fit its capacity {cap}"
            ));
        }
        if cap != cfg.capacity {
            return Err(format!(
                "the replay buffer holds {cap} slots, the config asks for {}",
                cfg.capacity
            ));
        }
        let bad = s
            .obs
            .iter()
            .chain(&s.next_obs)
            .chain(&s.actions)
            .chain(&s.rewards)
            .any(|v| !v.is_finite())
            || s.priorities.iter().any(|p| !p.is_finite() || *p < 0.0)
            || !(s.max_priority.is_finite() && s.max_priority > 0.0)
            || s.ends.iter().any(|&e| e > 2)
            || s.next_slot.iter().any(|&n| n != NONE && n as usize >= cap)
            || s.open
                .iter()
                .any(|&(_, slot)| slot != NONE && slot as usize >= cap);
        if bad {
            return Err("the replay buffer holds a non-finite value or a bad index".into());
        }
        let mut tree = Tree::new(cap);
        for i in 0..s.size {
            tree.set(i, s.priorities[i].powf(cfg.alpha));
        }
        Ok(ReplayBuffer {
            rng: NpRandom::from_state(s.rng.0, s.rng.1),
            tree,
            cfg,
            s,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample_batch::Fragment;

    fn cfg(prioritized: bool, capacity: usize) -> ReplayConfig {
        ReplayConfig {
            prioritized,
            capacity,
            alpha: 1.0,
            beta: 1.0,
        }
    }

    /// One env's batch of `rows` steps with observation = step number, reward 1.
    fn batch(first: u32, rows: usize, starts: bool, end: Option<bool>) -> SampleBatch {
        let mut b = SampleBatch::new(1, 1, 2);
        for i in 0..rows {
            b.obs.push((first as usize + i) as f32);
            b.actions.push(0.0);
            b.rewards.push(1.0);
        }
        b.bootstrap_obs.push((first as usize + rows) as f32);
        b.fragments.push(Fragment {
            start: 0,
            end: rows,
            terminated: end == Some(true),
            truncated: end == Some(false),
            bootstrap: (end != Some(true)).then_some(0),
            env: 0,
            starts_episode: starts,
            first_step: first,
        });
        b
    }

    #[test]
    fn n_step_returns_span_sample_calls_and_stop_at_episode_ends() {
        let mut buf = ReplayBuffer::new(cfg(false, 100), 1, 1, 1);
        buf.add(&batch(0, 3, true, None), 0);
        buf.add(&batch(3, 2, false, Some(true)), 0);
        assert_eq!(buf.len(), 5);
        let b = buf.sample(200, (3, 3), 0.5, 0.0);
        assert_eq!(b.len(), 200);
        for i in 0..b.len() {
            let t = b.obs[i];
            // Steps 0..=2 have 3 steps ahead; 3 and 4 end at the terminal step 4.
            let (k, ret) = match t as u32 {
                0..=2 => (3, 1.75),
                3 => (2, 1.5),
                _ => (1, 1.0),
            };
            assert_eq!(b.n_steps[i], k, "step {t}");
            assert_eq!(b.rewards[i], ret, "step {t}");
            assert_eq!(b.terminated[i], t as u32 + k == 5);
            // A terminal step's next observation is never used; the buffer keeps its own.
            let next = if b.terminated[i] {
                t + k as f32 - 1.0
            } else {
                t + k as f32
            };
            assert_eq!(b.next_obs[i], next, "step {t}");
        }
    }

    #[test]
    fn an_episode_in_progress_is_not_sampled_past_its_end() {
        let mut buf = ReplayBuffer::new(cfg(false, 100), 1, 1, 2);
        buf.add(&batch(0, 4, true, None), 0);
        let b = buf.sample(100, (3, 3), 1.0, 0.0);
        // Only steps 0 and 1 have two stored successors.
        assert!(b.obs.iter().all(|&o| o <= 1.0), "{:?}", b.obs);
    }

    #[test]
    fn overwritten_steps_break_the_chain_and_priorities_steer_sampling() {
        let mut buf = ReplayBuffer::new(cfg(true, 4), 1, 1, 3);
        buf.add(&batch(0, 6, true, Some(false)), 0);
        assert_eq!(buf.len(), 4);
        let b = buf.sample(50, (1, 1), 1.0, 1.0);
        assert!(b.obs.iter().all(|&o| o >= 2.0));
        // Make slot of step 5 (slot 1) dominant.
        buf.update_priorities(&[0, 1, 2, 3], &[0.001, 10.0, 0.001, 0.001]);
        let b = buf.sample(400, (1, 1), 1.0, 1.0);
        let fives = b.obs.iter().filter(|&&o| o == 5.0).count();
        assert!(fives > 390, "{fives}");
        // The likeliest row gets the smallest importance weight.
        let i = b.obs.iter().position(|&o| o == 5.0).unwrap();
        assert!(b.weights[i] < 0.01);
        let state = buf.state();
        let mut again = ReplayBuffer::from_state(cfg(true, 4), state.clone()).unwrap();
        assert_eq!(
            again.sample(10, (1, 1), 1.0, 1.0),
            buf.sample(10, (1, 1), 1.0, 1.0)
        );
        let mut bad = state;
        bad.priorities[0] = f64::NAN;
        assert!(ReplayBuffer::from_state(cfg(true, 4), bad).is_err());
    }
}
