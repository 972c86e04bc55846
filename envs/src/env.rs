//! The Gymnasium-style environment interface.

use std::collections::BTreeMap;

use crate::{RgbFrame, Space};

/// Extra information from `reset` and `step` (Gymnasium's `info` dict, numbers only).
pub type Info = BTreeMap<String, f64>;

/// An action, borrowed so that stepping allocates nothing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Action<'a> {
    /// An element of a `Discrete` space.
    Discrete(i64),
    /// An element of a `Box` space, flattened.
    Continuous(&'a [f32]),
}

/// What one step returns besides the observation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Transition {
    /// The reward for this step.
    pub reward: f64,
    /// The episode ended in a terminal state of the MDP (no bootstrapping past it).
    pub terminated: bool,
    /// The episode was cut short from outside the MDP (time limit): bootstrap from the
    /// final observation.
    pub truncated: bool,
}

impl Transition {
    /// Whether the episode is over, either way.
    pub fn done(&self) -> bool {
        self.terminated || self.truncated
    }
}

/// The result of [`Env::step`], as Gymnasium's 5-tuple.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// The observation after the step.
    pub obs: Vec<f32>,
    /// The reward for this step.
    pub reward: f64,
    /// See [`Transition::terminated`].
    pub terminated: bool,
    /// See [`Transition::truncated`].
    pub truncated: bool,
    /// Extra information.
    pub info: Info,
}

/// An environment, as Gymnasium's `Env`: `reset` starts an episode, `step` advances it.
///
/// Observations are flat `f32` slices of length `observation_space().flat_dim()`. The
/// `*_into` methods write them into a caller's buffer and are what vector envs and env
/// runners call; `reset` and `step` are the allocating Gymnasium-shaped conveniences.
pub trait Env: Send {
    /// The space observations come from.
    fn observation_space(&self) -> &Space;

    /// The space actions must come from.
    fn action_space(&self) -> &Space;

    /// Starts an episode, writing the first observation into `obs`. With `Some(seed)` the
    /// environment's random generator is reseeded (the same seed gives the same episode
    /// start); with `None` it continues from where it was.
    fn reset_into(&mut self, seed: Option<u64>, obs: &mut [f32]) -> Info;

    /// Advances one step, writing the next observation into `obs`.
    ///
    /// # Panics
    /// If the action is not in the action space or `reset` was never called (Gymnasium
    /// raises an error in both cases).
    fn step_into(&mut self, action: Action<'_>, obs: &mut [f32]) -> Transition;

    /// A picture of the current state, if the env can draw itself (Gymnasium's
    /// `render()` with `render_mode="rgb_array"`).
    fn render(&self) -> Option<RgbFrame> {
        None
    }

    /// Frames per second of real time, Gymnasium's `metadata["render_fps"]`.
    fn render_fps(&self) -> u32 {
        30
    }

    /// The env's full state (physics, step counters, random generator) as words, so that a
    /// checkpoint can resume it exactly; `None` if the env cannot save its state.
    fn save_state(&self) -> Option<Vec<u64>> {
        None
    }

    /// Resumes a state from [`save_state`](Env::save_state); errors name what does not fit.
    fn load_state(&mut self, _words: &[u64]) -> Result<(), String> {
        Err("this env cannot load a saved state".to_string())
    }

    /// Starts an episode and returns its first observation and info.
    fn reset(&mut self, seed: Option<u64>) -> (Vec<f32>, Info) {
        let mut obs = vec![0.0; self.observation_space().flat_dim()];
        let info = self.reset_into(seed, &mut obs);
        (obs, info)
    }

    /// Advances one step and returns Gymnasium's `(obs, reward, terminated, truncated, info)`.
    fn step(&mut self, action: Action<'_>) -> Step {
        let mut obs = vec![0.0; self.observation_space().flat_dim()];
        let t = self.step_into(action, &mut obs);
        Step {
            obs,
            reward: t.reward,
            terminated: t.terminated,
            truncated: t.truncated,
            info: Info::new(),
        }
    }
}

impl<E: Env + ?Sized> Env for Box<E> {
    fn observation_space(&self) -> &Space {
        (**self).observation_space()
    }
    fn action_space(&self) -> &Space {
        (**self).action_space()
    }
    fn reset_into(&mut self, seed: Option<u64>, obs: &mut [f32]) -> Info {
        (**self).reset_into(seed, obs)
    }
    fn step_into(&mut self, action: Action<'_>, obs: &mut [f32]) -> Transition {
        (**self).step_into(action, obs)
    }
    fn render(&self) -> Option<RgbFrame> {
        (**self).render()
    }
    fn render_fps(&self) -> u32 {
        (**self).render_fps()
    }
    fn save_state(&self) -> Option<Vec<u64>> {
        (**self).save_state()
    }
    fn load_state(&mut self, words: &[u64]) -> Result<(), String> {
        (**self).load_state(words)
    }
}

/// Gymnasium's `TimeLimit` wrapper: truncates an episode after `max_episode_steps` steps.
/// On that step `truncated` is true, and `terminated` keeps the inner env's value.
#[derive(Debug, Clone)]
pub struct TimeLimit<E> {
    inner: E,
    max_episode_steps: u32,
    elapsed_steps: u32,
}

impl<E: Env> TimeLimit<E> {
    /// Wraps `inner` with a limit of `max_episode_steps` steps per episode.
    pub fn new(inner: E, max_episode_steps: u32) -> Self {
        TimeLimit {
            inner,
            max_episode_steps,
            elapsed_steps: 0,
        }
    }

    /// The wrapped env (Gymnasium's `env.unwrapped` for one level of wrapping).
    pub fn inner(&self) -> &E {
        &self.inner
    }

    /// The wrapped env, mutably (to read or set its physical state).
    pub fn inner_mut(&mut self) -> &mut E {
        &mut self.inner
    }

    /// Steps taken in the current episode.
    pub fn elapsed_steps(&self) -> u32 {
        self.elapsed_steps
    }

    /// The step limit.
    pub fn max_episode_steps(&self) -> u32 {
        self.max_episode_steps
    }
}

impl<E: Env> Env for TimeLimit<E> {
    fn observation_space(&self) -> &Space {
        self.inner.observation_space()
    }
    fn action_space(&self) -> &Space {
        self.inner.action_space()
    }
    fn reset_into(&mut self, seed: Option<u64>, obs: &mut [f32]) -> Info {
        self.elapsed_steps = 0;
        self.inner.reset_into(seed, obs)
    }
    fn render(&self) -> Option<RgbFrame> {
        self.inner.render()
    }
    fn render_fps(&self) -> u32 {
        self.inner.render_fps()
    }
    fn save_state(&self) -> Option<Vec<u64>> {
        let mut words = vec![u64::from(self.elapsed_steps)];
        words.extend(self.inner.save_state()?);
        Some(words)
    }
    fn load_state(&mut self, words: &[u64]) -> Result<(), String> {
        let (&elapsed, inner) = words.split_first().ok_or("TimeLimit: empty state")?;
        let elapsed = u32::try_from(elapsed)
            .ok()
            .filter(|&e| e <= self.max_episode_steps)
            .ok_or_else(|| {
                format!(
                    "TimeLimit: {elapsed} steps taken, more than the limit of {}",
                    self.max_episode_steps
                )
            })?;
        self.inner.load_state(inner)?;
        self.elapsed_steps = elapsed;
        Ok(())
    }
    #[inline]
    fn step_into(&mut self, action: Action<'_>, obs: &mut [f32]) -> Transition {
        let mut t = self.inner.step_into(action, obs);
        self.elapsed_steps += 1;
        if self.elapsed_steps >= self.max_episode_steps {
            t.truncated = true;
        }
        t
    }
}
