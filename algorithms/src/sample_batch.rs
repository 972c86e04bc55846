//! `SampleBatch`: columnar experience from env runners, cut into episode fragments.

/// One contiguous piece of one episode, as rows `start..end` of a [`SampleBatch`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fragment {
    /// First row.
    pub start: usize,
    /// One past the last row.
    pub end: usize,
    /// Whether the piece ends with a terminal state (its bootstrap value is 0).
    pub terminated: bool,
    /// Row of [`SampleBatch::bootstrap_obs`] to bootstrap the value from, when the piece
    /// does not end in a terminal state: the final observation of a truncated episode, or the
    /// next observation of an episode that goes on in the next sample.
    pub bootstrap: Option<usize>,
}

/// Experience of one or more env runners for one iteration.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SampleBatch {
    /// Values per observation.
    pub obs_dim: usize,
    /// Number of discrete actions (width of `action_dist_inputs`).
    pub num_actions: usize,
    /// Observations (as the module saw them: filtered), rows × `obs_dim`.
    pub obs: Vec<f32>,
    /// Actions taken.
    pub actions: Vec<u32>,
    /// Rewards received.
    pub rewards: Vec<f32>,
    /// Log-probability of each action under the sampling policy.
    pub action_logp: Vec<f32>,
    /// Logits of the sampling policy, rows × `num_actions` (for the KL term).
    pub action_dist_inputs: Vec<f32>,
    /// Episode pieces; together they cover every row once.
    pub fragments: Vec<Fragment>,
    /// Observations to bootstrap values from, rows × `obs_dim`.
    pub bootstrap_obs: Vec<f32>,
}

impl SampleBatch {
    /// An empty batch for the given sizes.
    pub fn new(obs_dim: usize, num_actions: usize) -> Self {
        SampleBatch {
            obs_dim,
            num_actions,
            ..Default::default()
        }
    }

    /// Rows (env steps) in the batch.
    pub fn len(&self) -> usize {
        self.actions.len()
    }

    /// Whether the batch has no rows.
    pub fn is_empty(&self) -> bool {
        self.actions.is_empty()
    }

    /// Appends another batch's rows and fragments.
    pub fn append(&mut self, other: &SampleBatch) {
        let rows = self.len();
        let boots = self.bootstrap_obs.len() / self.obs_dim.max(1);
        self.obs.extend_from_slice(&other.obs);
        self.actions.extend_from_slice(&other.actions);
        self.rewards.extend_from_slice(&other.rewards);
        self.action_logp.extend_from_slice(&other.action_logp);
        self.action_dist_inputs
            .extend_from_slice(&other.action_dist_inputs);
        self.bootstrap_obs.extend_from_slice(&other.bootstrap_obs);
        self.fragments
            .extend(other.fragments.iter().map(|f| Fragment {
                start: f.start + rows,
                end: f.end + rows,
                terminated: f.terminated,
                bootstrap: f.bootstrap.map(|b| b + boots),
            }));
    }
}
