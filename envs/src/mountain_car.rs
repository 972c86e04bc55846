//! MountainCar-v0, exactly as Gymnasium 1.x's `MountainCarEnv`: float64 state, `math.cos`,
//! `np.clip`, float32 observations. The 200-step limit is the [`TimeLimit`](crate::TimeLimit)
//! wrapper that [`make`](crate::make) applies.

use crate::state_words::{self, StateWords};
use crate::{Action, Env, Info, NpRandom, RgbFrame, Space, Transition};

pub(crate) const MIN_POSITION: f64 = -1.2;
pub(crate) const MAX_POSITION: f64 = 0.6;
pub(crate) const MAX_SPEED: f64 = 0.07;
const GOAL_POSITION: f64 = 0.5;
const GOAL_VELOCITY: f64 = 0.0;
const FORCE: f64 = 0.001;
const GRAVITY: f64 = 0.0025;
/// Saved-state flag: the state exists (a reset happened).
const HAS_STATE: u64 = 1;

/// A car in a valley, too weak to drive up the right hill directly (Moore, 1990).
#[derive(Debug, Clone)]
pub struct MountainCar {
    state: Option<[f64; 2]>,
    rng: Option<NpRandom>,
    observation_space: Space,
    action_space: Space,
}

impl Default for MountainCar {
    fn default() -> Self {
        Self::new()
    }
}

/// The observation box of both mountain cars.
pub(crate) fn observation_space() -> Space {
    Space::box1d(
        vec![MIN_POSITION as f32, -MAX_SPEED as f32],
        vec![MAX_POSITION as f32, MAX_SPEED as f32],
    )
}

/// A start state `[uniform(-0.6, -0.4), 0]`, as both mountain cars draw it.
pub(crate) fn reset_state(rng: &mut NpRandom) -> [f64; 2] {
    [rng.uniform(-0.6, -0.4), 0.0]
}

impl MountainCar {
    /// A mountain car that needs a `reset` before its first step.
    pub fn new() -> Self {
        MountainCar {
            state: None,
            rng: None,
            observation_space: observation_space(),
            action_space: Space::discrete(3),
        }
    }

    /// The physical state `[position, velocity]` (Gymnasium's `env.unwrapped.state`).
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
            "MountainCar-v0: a non-finite state {state:?}"
        );
        self.state = Some(state);
    }
}

/// `np.clip` of a float64 scalar.
fn clip(x: f64, lo: f64, hi: f64) -> f64 {
    x.max(lo).min(hi)
}

impl Env for MountainCar {
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
        let s = reset_state(rng);
        self.state = Some(s);
        obs[0] = s[0] as f32;
        obs[1] = s[1] as f32;
        Info::new()
    }

    #[inline]
    fn step_into(&mut self, action: Action<'_>, obs: &mut [f32]) -> Transition {
        let push = match action {
            Action::Discrete(a @ 0..=2) => (a - 1) as f64,
            other => panic!("MountainCar-v0: action {other:?} is not in Discrete(3)"),
        };
        let Some([mut position, mut velocity]) = self.state else {
            panic!("MountainCar-v0: call reset before step");
        };
        velocity += push * FORCE + (3.0 * position).cos() * (-GRAVITY);
        velocity = clip(velocity, -MAX_SPEED, MAX_SPEED);
        position += velocity;
        position = clip(position, MIN_POSITION, MAX_POSITION);
        if position == MIN_POSITION && velocity < 0.0 {
            velocity = 0.0;
        }
        let terminated = position >= GOAL_POSITION && velocity >= GOAL_VELOCITY;
        self.state = Some([position, velocity]);
        obs[0] = position as f32;
        obs[1] = velocity as f32;
        Transition {
            reward: -1.0,
            terminated,
            truncated: false,
        }
    }

    /// `[flags, position, velocity, rng (4 words)]`.
    fn save_state(&self) -> Option<Vec<u64>> {
        let flags = u64::from(self.state.is_some());
        let values = self.state.unwrap_or_default();
        Some(state_words::save(flags, &values, self.rng.as_ref()))
    }

    fn load_state(&mut self, w: &[u64]) -> Result<(), String> {
        let words = StateWords::parse("MountainCar-v0", w, 2, HAS_STATE)?;
        self.state = words.flag(HAS_STATE).then(|| words.values::<2>(0));
        self.rng = words.rng();
        Ok(())
    }

    /// Gymnasium's 600×400 picture: the hill, the car and the flag.
    fn render(&self) -> Option<RgbFrame> {
        let [position, _] = self.state?;
        Some(draw(position, GOAL_POSITION))
    }
}

/// Height of the hill at `x`.
fn height(x: f64) -> f64 {
    (3.0 * x).sin() * 0.45 + 0.55
}

/// The picture of both mountain cars: the car at `position`, the flag at `goal`.
pub(crate) fn draw(position: f64, goal: f64) -> RgbFrame {
    const W: f64 = 600.0;
    const H: f64 = 400.0;
    let scale = W / (MAX_POSITION - MIN_POSITION);
    let (car_w, car_h, clearance) = (40.0, 20.0, 10.0);
    let mut f = RgbFrame::filled(W as usize, H as usize, [255, 255, 255]);
    // Gymnasium draws with y up from the bottom and flips; `to_px` does both at once.
    let to_px = |x: f64, y: f64| (x, H - y);
    let hill: Vec<(f64, f64)> = (0..100)
        .map(|i| {
            let x = MIN_POSITION + (MAX_POSITION - MIN_POSITION) * f64::from(i) / 99.0;
            to_px((x - MIN_POSITION) * scale, height(x) * scale)
        })
        .collect();
    f.draw_polyline(&hill, 2.0, [0, 0, 0]);

    let angle = (3.0 * position).cos();
    let (sin, cos) = angle.sin_cos();
    let place = |cx: f64, cy: f64| {
        to_px(
            cx * cos - cy * sin + (position - MIN_POSITION) * scale,
            cx * sin + cy * cos + clearance + height(position) * scale,
        )
    };
    let (l, r, t, b) = (-car_w / 2.0, car_w / 2.0, car_h, 0.0);
    let body = [place(l, b), place(l, t), place(r, t), place(r, b)];
    f.fill_polygon(&body, [0, 0, 0]);
    for wx in [car_w / 4.0, -car_w / 4.0] {
        let (x, y) = place(wx, 0.0);
        f.fill_circle(x, y, (car_h / 2.5f64).trunc(), [128, 128, 128]);
    }

    let flag_x = ((goal - MIN_POSITION) * scale).trunc();
    let flag_y1 = (height(goal) * scale).trunc();
    let flag_y2 = flag_y1 + 50.0;
    f.draw_line(
        to_px(flag_x, flag_y1),
        to_px(flag_x, flag_y2),
        1.0,
        [0, 0, 0],
    );
    let pennant = [
        to_px(flag_x, flag_y2),
        to_px(flag_x, flag_y2 - 10.0),
        to_px(flag_x + 25.0, flag_y2 - 5.0),
    ];
    f.fill_polygon(&pennant, [204, 204, 0]);
    f
}
