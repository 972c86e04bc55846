//! Acrobot-v1, exactly as Gymnasium 1.x's `AcrobotEnv` (the book's dynamics, RK4 over one
//! 0.2 s step). Gymnasium keeps the start state as float32 (so the first observation takes
//! NumPy's float32 sin and cos) and every later state as float64; the equations here follow
//! its operation order, with `x ** 2` as the C library's `pow`, as NumPy computes it. The
//! 500-step limit is the [`TimeLimit`](crate::TimeLimit) wrapper that [`make`](crate::make)
//! applies.

use std::f64::consts::PI;

use crate::np_math::{np_cos_f32, np_sin_f32, pow2};
use crate::state_words::{self, StateWords};
use crate::{Action, Env, Info, NpRandom, RgbFrame, Space, Transition};

/// Seconds per step, integrated by one RK4 step.
const DT: f64 = 0.2;
const LINK_LENGTH_1: f64 = 1.0;
const LINK_LENGTH_2: f64 = 1.0;
const LINK_MASS_1: f64 = 1.0;
const LINK_MASS_2: f64 = 1.0;
/// Positions of the links' centres of mass.
const LINK_COM_POS_1: f64 = 0.5;
const LINK_COM_POS_2: f64 = 0.5;
/// Moment of inertia of both links.
const LINK_MOI: f64 = 1.0;
const G: f64 = 9.8;
const MAX_VEL_1: f64 = 4.0 * PI;
const MAX_VEL_2: f64 = 9.0 * PI;
/// Torque of actions 0, 1 and 2.
const AVAIL_TORQUE: [f64; 3] = [-1.0, 0.0, 1.0];
/// Loaded states with an angle beyond this are refused: `wrap` subtracts 2π once per turn.
const MAX_LOADED_ANGLE: f64 = 1e4;
/// Saved-state flag: the state exists (a reset happened).
const HAS_STATE: u64 = 1;

/// The two-link underactuated pendulum of Sutton (1996): swing the free end above a line.
#[derive(Debug, Clone)]
pub struct Acrobot {
    state: Option<[f64; 4]>,
    rng: Option<NpRandom>,
    observation_space: Space,
    action_space: Space,
}

impl Default for Acrobot {
    fn default() -> Self {
        Self::new()
    }
}

/// `wrap(x, m, M)` of Gymnasium's acrobot module: repeated subtraction, not `fmod`.
fn wrap(mut x: f64, m: f64, big_m: f64) -> f64 {
    let diff = big_m - m;
    while x > big_m {
        x -= diff;
    }
    while x < m {
        x += diff;
    }
    x
}

/// `bound(x, m, M)`: Python's `min(max(x, m), M)`.
fn bound(x: f64, m: f64, big_m: f64) -> f64 {
    let lo = if m > x { m } else { x };
    if big_m < lo { big_m } else { lo }
}

/// `AcrobotEnv._dsdt` with `book_or_nips = "book"`, for torque `a`: the state's derivative.
/// Products of constants are folded as Python folds them, left to right.
fn dsdt(s: &[f64; 4], a: f64) -> [f64; 4] {
    const M1: f64 = LINK_MASS_1;
    const M2: f64 = LINK_MASS_2;
    const L1: f64 = LINK_LENGTH_1;
    const LC1: f64 = LINK_COM_POS_1;
    const LC2: f64 = LINK_COM_POS_2;
    const I1: f64 = LINK_MOI;
    const I2: f64 = LINK_MOI;
    let [theta1, theta2, dtheta1, dtheta2] = *s;
    let (cos2, sin2) = (theta2.cos(), theta2.sin());
    let d1 = M1 * (LC1 * LC1) + M2 * ((L1 * L1 + LC2 * LC2) + 2.0 * L1 * LC2 * cos2) + I1 + I2;
    let d2 = M2 * (LC2 * LC2 + L1 * LC2 * cos2) + I2;
    let phi2 = M2 * LC2 * G * (theta1 + theta2 - PI / 2.0).cos();
    let phi1 = -M2 * L1 * LC2 * pow2(dtheta2) * sin2
        - 2.0 * M2 * L1 * LC2 * dtheta2 * dtheta1 * sin2
        + (M1 * LC1 + M2 * L1) * G * (theta1 - PI / 2.0).cos()
        + phi2;
    let ddtheta2 = (a + d2 / d1 * phi1 - M2 * L1 * LC2 * pow2(dtheta1) * sin2 - phi2)
        / (M2 * (LC2 * LC2) + I2 - pow2(d2) / d1);
    let ddtheta1 = -(d2 * ddtheta2 + phi1) / d1;
    [dtheta1, dtheta2, ddtheta1, ddtheta2]
}

/// Gymnasium's `rk4(derivs, y0, [0, dt])`: one classic Runge-Kutta step, element by element
/// as NumPy evaluates the array expressions. The torque rides along as a fifth state
/// component whose derivative is 0, so it stays `a` in every stage.
fn rk4(y0: &[f64; 4], a: f64) -> [f64; 4] {
    const DT2: f64 = DT / 2.0;
    let stage = |k: &[f64; 4], h: f64| -> [f64; 4] { std::array::from_fn(|i| y0[i] + h * k[i]) };
    let k1 = dsdt(y0, a);
    let k2 = dsdt(&stage(&k1, DT2), a);
    let k3 = dsdt(&stage(&k2, DT2), a);
    let k4 = dsdt(&stage(&k3, DT), a);
    std::array::from_fn(|i| y0[i] + DT / 6.0 * (k1[i] + 2.0 * k2[i] + 2.0 * k3[i] + k4[i]))
}

impl Acrobot {
    /// An acrobot that needs a `reset` before its first step.
    pub fn new() -> Self {
        let high = [1.0, 1.0, 1.0, 1.0, MAX_VEL_1 as f32, MAX_VEL_2 as f32];
        Acrobot {
            state: None,
            rng: None,
            observation_space: Space::box1d(high.iter().map(|h| -h).collect(), high.to_vec()),
            action_space: Space::discrete(3),
        }
    }

    /// The physical state `[theta1, theta2, dtheta1, dtheta2]` (Gymnasium's
    /// `env.unwrapped.state`); `theta2` is relative to the first link.
    pub fn state(&self) -> Option<[f64; 4]> {
        self.state
    }

    /// Sets the physical state, as assigning a float64 array to `env.unwrapped.state` does.
    ///
    /// # Panics
    /// If a value is not finite (Gymnasium's angle wrapping would never end).
    pub fn set_state(&mut self, state: [f64; 4]) {
        assert!(
            state.iter().all(|v| v.is_finite()),
            "Acrobot-v1: a non-finite state {state:?}"
        );
        self.state = Some(state);
    }

    /// Whether the free end is above the line (`-cos(θ1) - cos(θ1 + θ2) > 1`).
    fn terminal(s: &[f64; 4]) -> bool {
        -s[0].cos() - (s[1] + s[0]).cos() > 1.0
    }

    fn write_obs(s: &[f64; 4], obs: &mut [f32]) {
        let values = [s[0].cos(), s[0].sin(), s[1].cos(), s[1].sin(), s[2], s[3]];
        for (o, v) in obs.iter_mut().zip(values) {
            *o = v as f32;
        }
    }
}

impl Env for Acrobot {
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
        // `uniform(-0.1, 0.1, size=(4,)).astype(np.float32)`.
        let s: [f32; 4] = std::array::from_fn(|_| rng.uniform(-0.1, 0.1) as f32);
        self.state = Some(s.map(f64::from));
        // The state is a float32 array here, so NumPy's float32 sin and cos apply.
        let values = [
            np_cos_f32(s[0]),
            np_sin_f32(s[0]),
            np_cos_f32(s[1]),
            np_sin_f32(s[1]),
            s[2],
            s[3],
        ];
        obs[..6].copy_from_slice(&values);
        Info::new()
    }

    #[inline]
    fn step_into(&mut self, action: Action<'_>, obs: &mut [f32]) -> Transition {
        let torque = match action {
            Action::Discrete(a @ 0..=2) => AVAIL_TORQUE[a as usize],
            other => panic!("Acrobot-v1: action {other:?} is not in Discrete(3)"),
        };
        let Some(s) = self.state else {
            panic!("Acrobot-v1: call reset before step");
        };
        let mut ns = rk4(&s, torque);
        ns[0] = wrap(ns[0], -PI, PI);
        ns[1] = wrap(ns[1], -PI, PI);
        ns[2] = bound(ns[2], -MAX_VEL_1, MAX_VEL_1);
        ns[3] = bound(ns[3], -MAX_VEL_2, MAX_VEL_2);
        self.state = Some(ns);
        Self::write_obs(&ns, obs);
        let terminated = Self::terminal(&ns);
        Transition {
            reward: if terminated { 0.0 } else { -1.0 },
            terminated,
            truncated: false,
        }
    }

    /// `[flags, theta1, theta2, dtheta1, dtheta2, rng (4 words)]`.
    fn save_state(&self) -> Option<Vec<u64>> {
        let flags = u64::from(self.state.is_some());
        let values = self.state.unwrap_or_default();
        Some(state_words::save(flags, &values, self.rng.as_ref()))
    }

    fn load_state(&mut self, w: &[u64]) -> Result<(), String> {
        let words = StateWords::parse("Acrobot-v1", w, 4, HAS_STATE)?;
        let state = words.flag(HAS_STATE).then(|| words.values::<4>(0));
        if let Some(s) = state
            && s[..2].iter().any(|a| a.abs() > MAX_LOADED_ANGLE)
        {
            return Err(format!(
                "Acrobot-v1: angles {:?} are far outside [-π, π]",
                &s[..2]
            ));
        }
        self.state = state;
        self.rng = words.rng();
        Ok(())
    }

    /// Gymnasium's 500×500 picture: the goal line, the two links and their joints.
    fn render_fps(&self) -> u32 {
        15
    }

    fn render(&self) -> Option<RgbFrame> {
        let s = self.state?;
        const DIM: f64 = 500.0;
        let bound = LINK_LENGTH_1 + LINK_LENGTH_2 + 0.2;
        let scale = DIM / (bound * 2.0);
        let offset = DIM / 2.0;
        let mut f = RgbFrame::filled(DIM as usize, DIM as usize, [255, 255, 255]);
        // Gymnasium draws with y up and flips the picture; `to_px` does both at once.
        let to_px = |x: f64, y: f64| (x * scale + offset, DIM - (y * scale + offset));
        let (l0, l1) = (to_px(-2.2, 1.0), to_px(2.2, 1.0));
        f.draw_line(l0, l1, 1.0, [0, 0, 0]);
        let p1 = (LINK_LENGTH_1 * s[0].sin(), -LINK_LENGTH_1 * s[0].cos());
        let links = [
            ((0.0, 0.0), s[0] - PI / 2.0, LINK_LENGTH_1),
            (p1, s[0] + s[1] - PI / 2.0, LINK_LENGTH_2),
        ];
        for ((x, y), th, len) in links {
            let end = (x + len * th.cos(), y + len * th.sin());
            let (a, b) = (to_px(x, y), to_px(end.0, end.1));
            f.draw_line(a, b, 0.2 * scale, [0, 204, 204]);
            f.fill_circle(a.0, a.1, (0.1 * scale).trunc(), [204, 204, 0]);
        }
        Some(f)
    }
}
