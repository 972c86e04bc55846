//! MountainCarContinuous-v0, exactly as Gymnasium 1.x's `Continuous_MountainCarEnv` stepped
//! with float32 action arrays under NumPy 2.
//!
//! Its arithmetic mixes three kinds of float, and NumPy 2's promotion rules (NEP 50) decide the
//! precision of each operation: the state is a float64 array after `reset` and a float32 array
//! after every step; `min(max(action[0], -1.0), 1.0)` is the `np.float32` action or, when
//! clipped, a Python float bound; `math.cos` returns a Python float. An `np.float32` meeting a
//! Python float stays float32 (the Python float is rounded first), also in comparisons, so
//! e.g. a position of `float32(0.45)` = 0.449999988 reaches the 0.45 goal. [`Np`] carries
//! those kinds through the step so that it reads like Gymnasium's. The 999-step limit is the
//! [`TimeLimit`](crate::TimeLimit) wrapper that [`make`](crate::make) applies.

use crate::mountain_car::{self, MAX_POSITION, MAX_SPEED, MIN_POSITION};
use crate::np_math::{Np, pow2};
use crate::state_words::{self, StateWords};
use crate::{Action, Env, Info, NpRandom, RgbFrame, Space, Transition};

const MIN_ACTION: f64 = -1.0;
const MAX_ACTION: f64 = 1.0;
/// 0.45 here, 0.5 in the discrete MountainCar.
const GOAL_POSITION: f64 = 0.45;
const GOAL_VELOCITY: f64 = 0.0;
const POWER: f64 = 0.0015;
/// Saved-state flags: the state exists; it is a float32 array (after a step).
const HAS_STATE: u64 = 1;
const STATE_F32: u64 = 2;

/// The mountain car with a continuous force in [-1, 1] and an energy penalty.
#[derive(Debug, Clone)]
pub struct ContinuousMountainCar {
    state: Option<[f64; 2]>,
    /// Whether Gymnasium holds the state as a float32 array (after a step) rather than the
    /// float64 array `reset` makes; the values are then exactly float32 values.
    state_is_f32: bool,
    rng: Option<NpRandom>,
    observation_space: Space,
    action_space: Space,
}

impl Default for ContinuousMountainCar {
    fn default() -> Self {
        Self::new()
    }
}

impl ContinuousMountainCar {
    /// A mountain car that needs a `reset` before its first step.
    pub fn new() -> Self {
        ContinuousMountainCar {
            state: None,
            state_is_f32: false,
            rng: None,
            observation_space: mountain_car::observation_space(),
            action_space: Space::box1d(vec![MIN_ACTION as f32], vec![MAX_ACTION as f32]),
        }
    }

    /// The physical state `[position, velocity]` (Gymnasium's `env.unwrapped.state`, widened to
    /// f64 when it is a float32 array; see [`state_is_f32`](Self::state_is_f32)).
    pub fn state(&self) -> Option<[f64; 2]> {
        self.state
    }

    /// Whether the state is a float32 array, as it is after any step (and a float64 one after
    /// `reset`); the dtype decides the precision of the next step's arithmetic.
    pub fn state_is_f32(&self) -> bool {
        self.state_is_f32
    }

    /// Sets the state as a float64 array, as `env.unwrapped.state = np.array([p, v])` does.
    ///
    /// # Panics
    /// If a value is not finite.
    pub fn set_state(&mut self, state: [f64; 2]) {
        assert!(
            state.iter().all(|v| v.is_finite()),
            "MountainCarContinuous-v0: a non-finite state {state:?}"
        );
        self.state = Some(state);
        self.state_is_f32 = false;
    }

    /// Sets the state as a float32 array, the dtype it has after any step.
    ///
    /// # Panics
    /// If a value is not finite.
    pub fn set_state_f32(&mut self, state: [f32; 2]) {
        self.set_state(state.map(f64::from));
        self.state_is_f32 = true;
    }
}

impl Env for ContinuousMountainCar {
    fn observation_space(&self) -> &Space {
        &self.observation_space
    }

    fn action_space(&self) -> &Space {
        &self.action_space
    }

    fn reset_into(&mut self, seed: Option<u64>, obs: &mut [f32]) -> Info {
        let rng = match seed {
            Some(s) => self.rng.insert(NpRandom::from_seed(s)),
            None => self.rng.get_or_insert_with(NpRandom::from_entropy),
        };
        let s = mountain_car::reset_state(rng);
        self.state = Some(s);
        self.state_is_f32 = false;
        obs[0] = s[0] as f32;
        obs[1] = s[1] as f32;
        Info::new()
    }

    /// Actions outside [-1, 1] are clipped, as in Gymnasium; the energy penalty uses the
    /// unclipped value.
    ///
    /// # Panics
    /// If the action is not one value or is NaN (Gymnasium would carry NaN into the state).
    #[inline]
    fn step_into(&mut self, action: Action<'_>, obs: &mut [f32]) -> Transition {
        let a = match action {
            Action::Continuous(&[a]) if !a.is_nan() => a,
            other => panic!(
                "MountainCarContinuous-v0: action {other:?} is not one non-NaN value of {}",
                self.action_space
            ),
        };
        let Some([p, v]) = self.state else {
            panic!("MountainCarContinuous-v0: call reset before step");
        };
        let (mut position, mut velocity) = if self.state_is_f32 {
            (Np::F32(p as f32), Np::F32(v as f32))
        } else {
            (Np::F64(p), Np::F64(v))
        };
        let py = Np::Py;
        let force = Np::F32(a).py_max(py(MIN_ACTION)).py_min(py(MAX_ACTION));
        let cos = py((py(3.0) * position).to_f64().cos());
        velocity = velocity + (force * py(POWER) - py(0.0025) * cos);
        if velocity.gt(py(MAX_SPEED)) {
            velocity = py(MAX_SPEED);
        }
        if velocity.lt(py(-MAX_SPEED)) {
            velocity = py(-MAX_SPEED);
        }
        position = position + velocity;
        if position.gt(py(MAX_POSITION)) {
            position = py(MAX_POSITION);
        }
        if position.lt(py(MIN_POSITION)) {
            position = py(MIN_POSITION);
        }
        if position.equals(py(MIN_POSITION)) && velocity.lt(py(0.0)) {
            velocity = py(0.0);
        }
        let terminated = position.ge(py(GOAL_POSITION)) && velocity.ge(py(GOAL_VELOCITY));
        let bonus = if terminated { 100.0 } else { 0.0 };
        // `math.pow(action[0], 2) * 0.1`, in float64, of the unclipped action.
        let reward = bonus - pow2(f64::from(a)) * 0.1;
        // `np.array([position, velocity], dtype=np.float32)`, which is also the observation.
        let next = [position.to_f32(), velocity.to_f32()];
        self.state = Some(next.map(f64::from));
        self.state_is_f32 = true;
        obs[..2].copy_from_slice(&next);
        Transition {
            reward,
            terminated,
            truncated: false,
        }
    }

    /// `[flags, position, velocity, rng (4 words)]`.
    fn save_state(&self) -> Option<Vec<u64>> {
        let flags = u64::from(self.state.is_some()) | if self.state_is_f32 { STATE_F32 } else { 0 };
        let values = self.state.unwrap_or_default();
        Some(state_words::save(flags, &values, self.rng.as_ref()))
    }

    fn load_state(&mut self, w: &[u64]) -> Result<(), String> {
        const ENV: &str = "MountainCarContinuous-v0";
        let words = StateWords::parse(ENV, w, 2, HAS_STATE | STATE_F32)?;
        let state = words.flag(HAS_STATE).then(|| words.values::<2>(0));
        let is_f32 = words.flag(STATE_F32);
        if let Some(s) = state
            && is_f32
            && s.iter().any(|&v| f64::from(v as f32) != v)
        {
            return Err(format!(
                "{ENV}: the state {s:?} is marked float32 but is not made of float32 values"
            ));
        }
        self.state = state;
        self.state_is_f32 = is_f32;
        self.rng = words.rng();
        Ok(())
    }

    /// Gymnasium's 600×400 picture: the hill, the car and the flag.
    fn render(&self) -> Option<RgbFrame> {
        let [position, _] = self.state?;
        Some(mountain_car::draw(position, GOAL_POSITION))
    }
}
