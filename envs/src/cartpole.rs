//! CartPole-v1, exactly as Gymnasium 1.x's `CartPoleEnv`: the same constants, f64 state and
//! Euler integration, strict threshold comparisons, float32 observations, and NumPy's
//! generator for the start state (so `reset(Some(seed))` matches Gymnasium's
//! `reset(seed=seed)`). The 500-step limit is the [`TimeLimit`](crate::TimeLimit) wrapper,
//! as in Gymnasium's registration; [`make`](crate::make) applies it.

use crate::{Action, Env, Info, NpRandom, RgbFrame, Space, Transition};

const GRAVITY: f64 = 9.8;
const MASSCART: f64 = 1.0;
const MASSPOLE: f64 = 0.1;
const TOTAL_MASS: f64 = MASSPOLE + MASSCART;
/// Half the pole's length.
const LENGTH: f64 = 0.5;
const POLEMASS_LENGTH: f64 = MASSPOLE * LENGTH;
const FORCE_MAG: f64 = 10.0;
/// Seconds between state updates.
const TAU: f64 = 0.02;
/// 12 degrees, computed as Gymnasium does.
const THETA_THRESHOLD_RADIANS: f64 = 12.0 * 2.0 * std::f64::consts::PI / 360.0;
const X_THRESHOLD: f64 = 2.4;

/// The classic cart-pole balancing task (Barto, Sutton and Anderson, 1983).
#[derive(Debug, Clone)]
pub struct CartPole {
    state: Option<[f64; 4]>,
    steps_beyond_terminated: Option<u32>,
    rng: Option<NpRandom>,
    observation_space: Space,
    action_space: Space,
}

impl Default for CartPole {
    fn default() -> Self {
        Self::new()
    }
}

impl CartPole {
    /// A cart-pole that needs a `reset` before its first step.
    pub fn new() -> Self {
        let high = [
            (X_THRESHOLD * 2.0) as f32,
            f32::INFINITY,
            (THETA_THRESHOLD_RADIANS * 2.0) as f32,
            f32::INFINITY,
        ];
        CartPole {
            state: None,
            steps_beyond_terminated: None,
            rng: None,
            observation_space: Space::box1d(high.iter().map(|h| -h).collect(), high.to_vec()),
            action_space: Space::discrete(2),
        }
    }

    /// The physical state `[x, x_dot, theta, theta_dot]` (Gymnasium's `env.unwrapped.state`).
    pub fn state(&self) -> Option<[f64; 4]> {
        self.state
    }

    /// Sets the physical state, as assigning `env.unwrapped.state` does in Gymnasium.
    pub fn set_state(&mut self, state: [f64; 4]) {
        self.state = Some(state);
    }

    #[inline]
    fn write_obs(state: &[f64; 4], obs: &mut [f32]) {
        for (o, s) in obs.iter_mut().zip(state) {
            *o = *s as f32;
        }
    }
}

impl Env for CartPole {
    fn observation_space(&self) -> &Space {
        &self.observation_space
    }

    fn action_space(&self) -> &Space {
        &self.action_space
    }

    /// `[flags, x, x_dot, theta, theta_dot, steps_beyond, rng state hi, lo, inc hi, lo]`.
    fn save_state(&self) -> Option<Vec<u64>> {
        let flags = u64::from(self.state.is_some())
            | u64::from(self.steps_beyond_terminated.is_some()) << 1
            | u64::from(self.rng.is_some()) << 2;
        let st = self.state.unwrap_or_default();
        let (rs, ri) = self.rng.as_ref().map_or((0, 0), NpRandom::to_state);
        let mut w = vec![flags];
        w.extend(st.iter().map(|v| v.to_bits()));
        w.push(u64::from(self.steps_beyond_terminated.unwrap_or(0)));
        w.extend([(rs >> 64) as u64, rs as u64, (ri >> 64) as u64, ri as u64]);
        Some(w)
    }

    fn load_state(&mut self, w: &[u64]) -> Result<(), String> {
        if w.len() != 10 {
            return Err(format!(
                "CartPole-v1: a state has 10 words, found {}",
                w.len()
            ));
        }
        let flags = w[0];
        if flags > 7 {
            return Err(format!("CartPole-v1: unknown state flags {flags:#x}"));
        }
        let state = (flags & 1 != 0).then(|| [w[1], w[2], w[3], w[4]].map(f64::from_bits));
        if let Some(s) = state
            && s.iter().any(|v| !v.is_finite())
        {
            return Err(format!("CartPole-v1: a non-finite physical state {s:?}"));
        }
        self.state = state;
        self.steps_beyond_terminated = (flags & 2 != 0)
            .then(|| u32::try_from(w[5]).map_err(|_| "CartPole-v1: bad step count".to_string()))
            .transpose()?;
        let join = |hi: u64, lo: u64| (u128::from(hi) << 64) | u128::from(lo);
        self.rng =
            (flags & 4 != 0).then(|| NpRandom::from_state(join(w[6], w[7]), join(w[8], w[9])));
        Ok(())
    }

    /// Gymnasium's 600×400 picture: the track, the cart, the pole and its axle.
    fn render_fps(&self) -> u32 {
        50
    }

    fn render(&self) -> Option<RgbFrame> {
        let [x, _, theta, _] = self.state?;
        let (w, h) = (600.0, 400.0);
        let scale = w / (X_THRESHOLD * 2.0);
        let (pole_w, pole_len) = (10.0, scale * 2.0 * LENGTH);
        let (cart_w, cart_h) = (50.0, 30.0);
        // Gymnasium draws with y up and flips; here y grows downwards from the top.
        let cart_y = h - 100.0;
        let cart_x = x * scale + w / 2.0;
        let mut f = RgbFrame::filled(w as usize, h as usize, [255, 255, 255]);
        f.fill_polygon(
            &[
                (0.0, cart_y - 0.5),
                (w, cart_y - 0.5),
                (w, cart_y + 0.5),
                (0.0, cart_y + 0.5),
            ],
            [0, 0, 0],
        );
        let (l, r, t, b) = (
            cart_x - cart_w / 2.0,
            cart_x + cart_w / 2.0,
            cart_y - cart_h / 2.0,
            cart_y + cart_h / 2.0,
        );
        f.fill_polygon(&[(l, t), (r, t), (r, b), (l, b)], [0, 0, 0]);
        let axle_y = cart_y - cart_h / 4.0;
        let corners = [
            (-pole_w / 2.0, 0.0),
            (pole_w / 2.0, 0.0),
            (pole_w / 2.0, pole_len),
            (-pole_w / 2.0, pole_len),
        ];
        let pole: Vec<(f64, f64)> = corners
            .iter()
            .map(|&(px, py)| {
                // Rotate by -theta (clockwise for a positive angle), then place at the axle.
                let (s, c) = (-theta).sin_cos();
                let (rx, ry) = (px * c - py * s, px * s + py * c);
                (cart_x + rx, axle_y - ry)
            })
            .collect();
        f.fill_polygon(&pole, [202, 152, 101]);
        f.fill_circle(cart_x, axle_y, pole_w / 2.0, [129, 132, 203]);
        Some(f)
    }

    fn reset_into(&mut self, seed: Option<u64>, obs: &mut [f32]) -> Info {
        let rng = match seed {
            Some(s) => self.rng.insert(NpRandom::from_seed(s)),
            None => self.rng.get_or_insert_with(NpRandom::from_entropy),
        };
        let state = [
            rng.uniform(-0.05, 0.05),
            rng.uniform(-0.05, 0.05),
            rng.uniform(-0.05, 0.05),
            rng.uniform(-0.05, 0.05),
        ];
        self.state = Some(state);
        self.steps_beyond_terminated = None;
        Self::write_obs(&state, obs);
        Info::new()
    }

    #[inline]
    fn step_into(&mut self, action: Action<'_>, obs: &mut [f32]) -> Transition {
        let push_right = match action {
            Action::Discrete(1) => true,
            Action::Discrete(0) => false,
            other => panic!("CartPole-v1: action {other:?} is not in Discrete(2)"),
        };
        let Some([x, x_dot, theta, theta_dot]) = self.state else {
            panic!("CartPole-v1: call reset before step");
        };
        let force = if push_right { FORCE_MAG } else { -FORCE_MAG };
        let costheta = theta.cos();
        let sintheta = theta.sin();

        let temp = (force + POLEMASS_LENGTH * (theta_dot * theta_dot) * sintheta) / TOTAL_MASS;
        let thetaacc = (GRAVITY * sintheta - costheta * temp)
            / (LENGTH * (4.0 / 3.0 - MASSPOLE * (costheta * costheta) / TOTAL_MASS));
        let xacc = temp - POLEMASS_LENGTH * thetaacc * costheta / TOTAL_MASS;

        // Euler integration, Gymnasium's default `kinematics_integrator`.
        let state = [
            x + TAU * x_dot,
            x_dot + TAU * xacc,
            theta + TAU * theta_dot,
            theta_dot + TAU * thetaacc,
        ];
        self.state = Some(state);
        Self::write_obs(&state, obs);

        let [x, _, theta, _] = state;
        // Gymnasium's strict comparisons, kept verbatim: a NaN state does not terminate there,
        // and `!range.contains` would terminate it.
        #[allow(clippy::manual_range_contains)]
        let terminated = x < -X_THRESHOLD
            || x > X_THRESHOLD
            || theta < -THETA_THRESHOLD_RADIANS
            || theta > THETA_THRESHOLD_RADIANS;
        let reward = if !terminated {
            1.0
        } else if let Some(n) = self.steps_beyond_terminated.as_mut() {
            // Stepping past the end: Gymnasium warns once and pays nothing.
            *n += 1;
            0.0
        } else {
            self.steps_beyond_terminated = Some(0);
            1.0
        };
        Transition {
            reward,
            terminated,
            truncated: false,
        }
    }
}
