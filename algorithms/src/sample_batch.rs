//! `SampleBatch`: columnar experience from env runners, cut into episode fragments.

/// One contiguous piece of one episode, as rows `start..end` of a [`SampleBatch`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Fragment {
    /// First row.
    pub start: usize,
    /// One past the last row.
    pub end: usize,
    /// Whether the piece ends with a terminal state (its bootstrap value is 0).
    pub terminated: bool,
    /// Whether the piece ends because the episode was truncated (a time limit).
    pub truncated: bool,
    /// The env (within its runner's vector env) the episode runs in.
    pub env: usize,
    /// Whether the piece starts with the episode's first step.
    pub starts_episode: bool,
    /// The episode step of the piece's first row.
    pub first_step: u32,
    /// Row of [`SampleBatch::bootstrap_obs`] to bootstrap the value from, when the piece
    /// does not end in a terminal state: the final observation of a truncated episode, or the
    /// next observation of an episode that goes on in the next sample.
    pub bootstrap: Option<usize>,
}

/// Experience of one or more env runners for one iteration.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SampleBatch {
    /// Values per observation.
    pub obs_dim: usize,
    /// Values per action: 1 for a discrete action (its index), else the `Box`'s size.
    pub action_dim: usize,
    /// Width of `action_dist_inputs` (logits, or mean and log-std).
    pub dist_width: usize,
    /// Observations (as the module saw them: filtered), rows × `obs_dim`.
    pub obs: Vec<f32>,
    /// Actions taken, rows × `action_dim`: indices (exact in `f32` below 2^24) or the
    /// policy's raw `Box` values (before they were mapped onto the env's bounds).
    pub actions: Vec<f32>,
    /// Rewards received.
    pub rewards: Vec<f32>,
    /// Log-probability of each action under the sampling policy.
    pub action_logp: Vec<f32>,
    /// The sampling policy's distribution inputs, rows × `dist_width` (for the KL term).
    pub action_dist_inputs: Vec<f32>,
    /// Episode pieces; together they cover every row once.
    pub fragments: Vec<Fragment>,
    /// Observations to bootstrap values from, rows × `obs_dim`.
    pub bootstrap_obs: Vec<f32>,
}

impl SampleBatch {
    /// An empty batch for the given sizes.
    pub fn new(obs_dim: usize, action_dim: usize, dist_width: usize) -> Self {
        SampleBatch {
            obs_dim,
            action_dim,
            dist_width,
            ..Default::default()
        }
    }

    /// Rows (env steps) in the batch.
    pub fn len(&self) -> usize {
        self.rewards.len()
    }

    /// Whether the batch has no rows.
    pub fn is_empty(&self) -> bool {
        self.rewards.is_empty()
    }

    /// Errors when the env handed over a non-finite reward or observation.
    pub fn check_finite(&self) -> Result<(), crate::error::LearnerError> {
        use crate::error::LearnerError;
        if let Some(i) = self.rewards.iter().position(|r| !r.is_finite()) {
            return Err(LearnerError::NonFiniteInput(format!(
                "the env returned a non-finite reward ({}) at row {i} of the batch",
                self.rewards[i]
            )));
        }
        if let Some(i) = self.obs.iter().position(|o| !o.is_finite()) {
            return Err(LearnerError::NonFiniteInput(format!(
                "the env returned a non-finite observation ({}) at row {} of the batch",
                self.obs[i],
                i / self.obs_dim.max(1)
            )));
        }
        Ok(())
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
                bootstrap: f.bootstrap.map(|b| b + boots),
                ..*f
            }));
    }
}
