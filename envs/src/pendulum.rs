//! Pendulum-v1, exactly as Gymnasium 1.x's `PendulumEnv` stepped with float32 action arrays
//! under NumPy 2: the clipped torque `u` is an `np.float32`, so `0.001 * u**2` and
//! `3.0 / (m * l**2) * u` are float32 (NEP 50) while the rest is float64; `x ** 2` is the C
//! library's `pow`; `angle_normalize` uses Python's float modulo; the angle itself is never
//! wrapped. The episode never terminates; the 200-step limit is the
//! [`TimeLimit`](crate::TimeLimit) wrapper that [`make`](crate::make) applies.

use std::f64::consts::PI;

use crate::np_math::{pow2, pow2_f32, py_mod};
use crate::state_words::{self, StateWords};
use crate::{Action, Env, Info, NpRandom, RgbFrame, Space, Transition};

const MAX_SPEED: f64 = 8.0;
const MAX_TORQUE: f32 = 2.0;
/// Seconds per step.
const DT: f64 = 0.05;
/// Gravity, Gymnasium's default `g`.
const G: f64 = 10.0;
const M: f64 = 1.0;
const L: f64 = 1.0;
/// Saved-state flags: the state exists; a torque was applied since the reset.
const HAS_STATE: u64 = 1;
const HAS_LAST_U: u64 = 2;

/// The inverted pendulum swing-up: keep a frictionless pendulum upright with limited torque.
#[derive(Debug, Clone)]
pub struct Pendulum {
    state: Option<[f64; 2]>,
    /// The last clipped torque, drawn by `render` (Gymnasium's `last_u`).
    last_u: Option<f32>,
    rng: Option<NpRandom>,
    observation_space: Space,
    action_space: Space,
}

impl Default for Pendulum {
    fn default() -> Self {
        Self::new()
    }
}

/// `((x + π) % (2π)) - π`, with Python's modulo.
fn angle_normalize(x: f64) -> f64 {
    py_mod(x + PI, 2.0 * PI) - PI
}

impl Pendulum {
    /// A pendulum that needs a `reset` before its first step.
    pub fn new() -> Self {
        let high = [1.0, 1.0, MAX_SPEED as f32];
        Pendulum {
            state: None,
            last_u: None,
            rng: None,
            observation_space: Space::box1d(high.iter().map(|h| -h).collect(), high.to_vec()),
            action_space: Space::box1d(vec![-MAX_TORQUE], vec![MAX_TORQUE]),
        }
    }

    /// The physical state `[theta, theta_dot]` (Gymnasium's `env.unwrapped.state`); `theta` is
    /// 0 upright and is not wrapped into [-π, π).
    pub fn state(&self) -> Option<[f64; 2]> {
        self.state
    }

    /// Sets the physical state, as assigning `env.unwrapped.state` does.
    ///
    /// # Panics
    /// If a value is not finite.
    pub fn set_state(&mut self, state: [f64; 2]) {
        assert!(
            state.iter().all(|v| v.is_finite()),
            "Pendulum-v1: a non-finite state {state:?}"
        );
        self.state = Some(state);
    }

    fn write_obs(s: &[f64; 2], obs: &mut [f32]) {
        obs[0] = s[0].cos() as f32;
        obs[1] = s[0].sin() as f32;
        obs[2] = s[1] as f32;
    }
}

impl Env for Pendulum {
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
        // `uniform(low=-high, high=high)` with `high = [π, 1]`: one draw per element.
        let s = [rng.uniform(-PI, PI), rng.uniform(-1.0, 1.0)];
        self.state = Some(s);
        self.last_u = None;
        Self::write_obs(&s, obs);
        Info::new()
    }

    /// Torques outside [-2, 2] are clipped, as in Gymnasium.
    ///
    /// # Panics
    /// If the action is not one value or is NaN (Gymnasium would carry NaN into the state).
    #[inline]
    fn step_into(&mut self, action: Action<'_>, obs: &mut [f32]) -> Transition {
        let u = match action {
            Action::Continuous(&[u]) if !u.is_nan() => u.clamp(-MAX_TORQUE, MAX_TORQUE),
            other => panic!(
                "Pendulum-v1: action {other:?} is not one non-NaN value of {}",
                self.action_space
            ),
        };
        let Some([th, thdot]) = self.state else {
            panic!("Pendulum-v1: call reset before step");
        };
        self.last_u = Some(u);
        // float32 terms (an np.float32 times a Python float), widened when added to float64.
        let torque_cost = 0.001f32 * pow2_f32(u);
        let torque_acc = (3.0 / (M * L * L)) as f32 * u;
        let costs = pow2(angle_normalize(th)) + 0.1 * pow2(thdot) + f64::from(torque_cost);
        let newthdot = thdot + (3.0 * G / (2.0 * L) * th.sin() + f64::from(torque_acc)) * DT;
        let newthdot = newthdot.clamp(-MAX_SPEED, MAX_SPEED);
        let newth = th + newthdot * DT;
        let s = [newth, newthdot];
        self.state = Some(s);
        Self::write_obs(&s, obs);
        Transition {
            reward: -costs,
            terminated: false,
            truncated: false,
        }
    }

    /// `[flags, theta, theta_dot, last_u, rng (4 words)]`.
    fn save_state(&self) -> Option<Vec<u64>> {
        let flags =
            u64::from(self.state.is_some()) | if self.last_u.is_some() { HAS_LAST_U } else { 0 };
        let [th, thdot] = self.state.unwrap_or_default();
        let values = [th, thdot, f64::from(self.last_u.unwrap_or(0.0))];
        Some(state_words::save(flags, &values, self.rng.as_ref()))
    }

    fn load_state(&mut self, w: &[u64]) -> Result<(), String> {
        const ENV: &str = "Pendulum-v1";
        let words = StateWords::parse(ENV, w, 3, HAS_STATE | HAS_LAST_U)?;
        let [th, thdot, u] = words.values::<3>(0);
        let last_u = words.flag(HAS_LAST_U).then_some(u);
        if let Some(u) = last_u
            && !(f64::from(u as f32) == u && u.abs() <= f64::from(MAX_TORQUE))
        {
            return Err(format!("{ENV}: {u} is not a clipped float32 torque"));
        }
        self.state = words.flag(HAS_STATE).then_some([th, thdot]);
        self.last_u = last_u.map(|u| u as f32);
        self.rng = words.rng();
        Ok(())
    }

    /// Gymnasium's 500×500 picture: the rod, its pivot, and an arc showing the last torque.
    fn render(&self) -> Option<RgbFrame> {
        let [theta, _] = self.state?;
        const DIM: f64 = 500.0;
        let scale = DIM / (2.2 * 2.0);
        let offset = (DIM / 2.0).trunc();
        let (rod_length, rod_width) = (scale, 0.2 * scale);
        let red = [204, 77, 77];
        let mut f = RgbFrame::filled(DIM as usize, DIM as usize, [255, 255, 255]);
        // Gymnasium draws with y up and flips the picture; `to_px` does both at once.
        let to_px = |x: f64, y: f64| (x + offset, DIM - (y + offset));
        let angle = theta + PI / 2.0;
        let end = to_px(rod_length * angle.cos(), rod_length * angle.sin());
        f.draw_line(to_px(0.0, 0.0), end, rod_width, red);
        let r = (rod_width / 2.0).trunc();
        f.fill_circle(offset, DIM - offset, r, red);
        f.fill_circle(end.0, end.1, r, red);
        if let Some(u) = self.last_u.filter(|u| *u != 0.0) {
            // Gymnasium blits a curved arrow scaled by |u|; an arc with a head, the same size.
            let radius = scale * f64::from(u.abs()) / 4.0;
            let dir = f64::from(u.signum());
            let arc: Vec<(f64, f64)> = (0..=24)
                .map(|i| {
                    let a = dir * (PI / 2.0 + 1.5 * PI * f64::from(i) / 24.0);
                    to_px(radius * a.cos(), radius * a.sin())
                })
                .collect();
            f.draw_polyline(&arc, 3.0, [0, 0, 0]);
            let tip = dir * (PI / 2.0 + 1.5 * PI);
            let (c, s) = (tip.cos(), tip.sin());
            let head = 6.0 + radius / 4.0;
            let (bx, by) = (radius * c, radius * s);
            // A triangle pointing along the arc's direction of travel at its end.
            let (tx, ty) = (-s * dir, c * dir);
            f.fill_polygon(
                &[
                    to_px(bx + tx * head, by + ty * head),
                    to_px(bx + c * head / 2.0, by + s * head / 2.0),
                    to_px(bx - c * head / 2.0, by - s * head / 2.0),
                ],
                [0, 0, 0],
            );
        }
        f.fill_circle(offset, DIM - offset, (0.05 * scale).trunc(), [0, 0, 0]);
        Some(f)
    }
}
