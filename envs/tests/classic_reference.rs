//! Acrobot-v1, MountainCar-v0, MountainCarContinuous-v0 and Pendulum-v1 against trajectories
//! recorded from Gymnasium 1.4 with NumPy 2.4 (see `data/gen_classic_reference.py`): the same
//! observations (f32 bits), states (f64 bits), rewards (f64 bits) and flags, single envs and
//! vector envs; and saved states that resume a recorded episode mid-way.

use envs::{
    Acrobot, Action, ActionBatch, ContinuousMountainCar, Env, MountainCar, Pendulum, TimeLimit,
    VectorEnv,
};
use serde::Deserialize;

#[derive(Deserialize)]
struct Reference {
    gymnasium: String,
    numpy: String,
    env_id: String,
    episodes: Vec<Episode>,
    vector: Vector,
}

#[derive(Deserialize)]
struct Episode {
    name: String,
    seed: u64,
    reset_obs: Vec<f64>,
    reset_state: Vec<f64>,
    /// A state set through `env.unwrapped.state` right after the reset.
    start: Option<SetState>,
    /// States set before given steps.
    overrides: Vec<Override>,
    ends_by: String,
    steps: Vec<StepRecord>,
}

#[derive(Deserialize)]
struct SetState {
    state: Vec<f64>,
    /// The NumPy dtype of the array assigned: `float64` or `float32`.
    dtype: String,
}

#[derive(Deserialize)]
struct Override {
    before_step: usize,
    #[serde(flatten)]
    set: SetState,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum ActionRecord {
    Discrete(i64),
    Continuous(Vec<f64>),
}

#[derive(Deserialize)]
struct StepRecord {
    action: ActionRecord,
    obs: Vec<f64>,
    state: Vec<f64>,
    reward: f64,
    terminated: bool,
    truncated: bool,
}

#[derive(Deserialize)]
struct Vector {
    num_envs: usize,
    seed: u64,
    reset_obs: Vec<Vec<f64>>,
    steps: Vec<VectorStep>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum ActionsRecord {
    Discrete(Vec<i64>),
    Continuous(Vec<Vec<f64>>),
}

#[derive(Deserialize)]
struct VectorStep {
    actions: ActionsRecord,
    obs: Vec<Vec<f64>>,
    rewards: Vec<f64>,
    terminated: Vec<bool>,
    truncated: Vec<bool>,
    final_obs: Vec<Option<Vec<f64>>>,
}

/// An env whose physical state the recordings read and set.
trait Recorded: Env + Sized + 'static {
    const ID: &'static str;
    const MAX_EPISODE_STEPS: u32;
    /// The ways its recorded episodes must end.
    const ENDINGS: &'static [&'static str];
    /// Some valid action.
    const ACTION: Action<'static>;
    /// How many f64 values its saved state holds.
    const SAVED_VALUES: usize;
    fn new() -> Self;
    fn reference() -> &'static str;
    fn state_vec(&self) -> Vec<f64>;
    fn set_state_as(&mut self, state: &[f64], dtype: &str);
}

impl Recorded for Acrobot {
    const ID: &'static str = "Acrobot-v1";
    const MAX_EPISODE_STEPS: u32 = 500;
    const ENDINGS: &'static [&'static str] = &["goal", "truncation", "goal_and_truncation"];
    const ACTION: Action<'static> = Action::Discrete(2);
    const SAVED_VALUES: usize = 4;
    fn new() -> Self {
        Acrobot::new()
    }
    fn reference() -> &'static str {
        include_str!("data/acrobot_v1_reference.json")
    }
    fn state_vec(&self) -> Vec<f64> {
        self.state().expect("a state").to_vec()
    }
    fn set_state_as(&mut self, s: &[f64], dtype: &str) {
        assert_eq!(dtype, "float64", "Acrobot states are set as float64 arrays");
        self.set_state(s.try_into().expect("4 values"));
    }
}

impl Recorded for MountainCar {
    const ID: &'static str = "MountainCar-v0";
    const MAX_EPISODE_STEPS: u32 = 200;
    const ENDINGS: &'static [&'static str] = &["goal", "truncation", "goal_and_truncation"];
    const ACTION: Action<'static> = Action::Discrete(0);
    const SAVED_VALUES: usize = 2;
    fn new() -> Self {
        MountainCar::new()
    }
    fn reference() -> &'static str {
        include_str!("data/mountaincar_v0_reference.json")
    }
    fn state_vec(&self) -> Vec<f64> {
        self.state().expect("a state").to_vec()
    }
    fn set_state_as(&mut self, s: &[f64], dtype: &str) {
        assert_eq!(
            dtype, "float64",
            "MountainCar states are set as float64 arrays"
        );
        self.set_state(s.try_into().expect("2 values"));
    }
}

impl Recorded for ContinuousMountainCar {
    const ID: &'static str = "MountainCarContinuous-v0";
    const MAX_EPISODE_STEPS: u32 = 999;
    const ENDINGS: &'static [&'static str] = &["goal", "truncation", "goal_and_truncation"];
    const ACTION: Action<'static> = Action::Continuous(&[0.5]);
    const SAVED_VALUES: usize = 2;
    fn new() -> Self {
        ContinuousMountainCar::new()
    }
    fn reference() -> &'static str {
        include_str!("data/mountaincarcontinuous_v0_reference.json")
    }
    fn state_vec(&self) -> Vec<f64> {
        self.state().expect("a state").to_vec()
    }
    fn set_state_as(&mut self, s: &[f64], dtype: &str) {
        match dtype {
            "float64" => self.set_state([s[0], s[1]]),
            "float32" => self.set_state_f32([s[0] as f32, s[1] as f32]),
            other => panic!("unexpected dtype {other}"),
        }
    }
}

impl Recorded for Pendulum {
    const ID: &'static str = "Pendulum-v1";
    const MAX_EPISODE_STEPS: u32 = 200;
    const ENDINGS: &'static [&'static str] = &["truncation"];
    const ACTION: Action<'static> = Action::Continuous(&[0.5]);
    const SAVED_VALUES: usize = 3;
    fn new() -> Self {
        Pendulum::new()
    }
    fn reference() -> &'static str {
        include_str!("data/pendulum_v1_reference.json")
    }
    fn state_vec(&self) -> Vec<f64> {
        self.state().expect("a state").to_vec()
    }
    fn set_state_as(&mut self, s: &[f64], dtype: &str) {
        assert_eq!(
            dtype, "float64",
            "Pendulum states are set as float64 arrays"
        );
        self.set_state(s.try_into().expect("2 values"));
    }
}

fn reference<E: Recorded>() -> Reference {
    let r: Reference = serde_json::from_str(E::reference()).expect("the reference file parses");
    assert_eq!(r.env_id, E::ID);
    r
}

fn make<E: Recorded>() -> TimeLimit<E> {
    TimeLimit::new(E::new(), E::MAX_EPISODE_STEPS)
}

/// Gymnasium wrote float32 values widened to float64; narrowing is exact.
fn f32_bits(v: &[f64]) -> Vec<u32> {
    v.iter().map(|&x| (x as f32).to_bits()).collect()
}

fn f64_bits(v: &[f64]) -> Vec<u64> {
    v.iter().map(|x| x.to_bits()).collect()
}

fn obs_bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// Replays `steps[range]` of `ep` on `env`, which must be where the episode was before the
/// range; checks every step against the recording.
fn replay_steps<E: Recorded>(
    env: &mut TimeLimit<E>,
    ep: &Episode,
    range: std::ops::Range<usize>,
    ctx: &str,
) {
    let mut action_buf = [0f32; 1];
    for (t, s) in ep
        .steps
        .iter()
        .enumerate()
        .take(range.end)
        .skip(range.start)
    {
        if let Some(o) = ep.overrides.iter().find(|o| o.before_step == t) {
            env.inner_mut().set_state_as(&o.set.state, &o.set.dtype);
        }
        let action = match &s.action {
            ActionRecord::Discrete(a) => Action::Discrete(*a),
            ActionRecord::Continuous(a) => {
                action_buf[0] = a[0] as f32;
                Action::Continuous(&action_buf)
            }
        };
        let step = env.step(action);
        let ctx = format!("{ctx}, step {t}");
        assert_eq!(
            f64_bits(&env.inner().state_vec()),
            f64_bits(&s.state),
            "{ctx}: state {:?}",
            env.inner().state_vec()
        );
        assert_eq!(
            obs_bits(&step.obs),
            f32_bits(&s.obs),
            "{ctx}: obs {:?}",
            step.obs
        );
        assert_eq!(
            step.reward.to_bits(),
            s.reward.to_bits(),
            "{ctx}: reward {}",
            step.reward
        );
        assert_eq!(step.terminated, s.terminated, "{ctx}: terminated");
        assert_eq!(step.truncated, s.truncated, "{ctx}: truncated");
    }
}

/// Resets `env` as the episode did (seed, then any start state) and checks the reset.
fn start_episode<E: Recorded>(env: &mut TimeLimit<E>, ep: &Episode, ctx: &str) {
    let (obs, _) = env.reset(Some(ep.seed));
    assert_eq!(obs_bits(&obs), f32_bits(&ep.reset_obs), "{ctx}: reset obs");
    assert_eq!(
        f64_bits(&env.inner().state_vec()),
        f64_bits(&ep.reset_state),
        "{ctx}: reset state"
    );
    if let Some(start) = &ep.start {
        env.inner_mut().set_state_as(&start.state, &start.dtype);
        assert_eq!(
            f64_bits(&env.inner().state_vec()),
            f64_bits(&start.state),
            "{ctx}: start"
        );
    }
}

fn episodes_match<E: Recorded>() {
    let r = reference::<E>();
    for (n, ep) in r.episodes.iter().enumerate() {
        let ctx = format!(
            "{} episode {n} '{}' (ends by {})",
            E::ID,
            ep.name,
            ep.ends_by
        );
        let mut env = make::<E>();
        start_episode(&mut env, ep, &ctx);
        replay_steps(&mut env, ep, 0..ep.steps.len(), &ctx);
    }
}

fn vector_matches<E: Recorded>() {
    let r = reference::<E>().vector;
    let mut venv = VectorEnv::new((0..r.num_envs).map(|_| make::<E>()).collect());
    let obs = obs_bits(venv.reset(Some(r.seed)));
    assert_eq!(
        obs,
        f32_bits(&r.reset_obs.concat()),
        "{}: vector reset",
        E::ID
    );
    let d = venv.obs_dim();
    let mut resets = 0;
    for (t, s) in r.steps.iter().enumerate() {
        let ctx = format!("{} vector step {t}", E::ID);
        match &s.actions {
            ActionsRecord::Discrete(a) => venv.step(ActionBatch::Discrete(a)),
            ActionsRecord::Continuous(a) => {
                let flat: Vec<f32> = a.concat().iter().map(|&v| v as f32).collect();
                venv.step(ActionBatch::Continuous(&flat));
            }
        }
        assert_eq!(
            obs_bits(venv.obs()),
            f32_bits(&s.obs.concat()),
            "{ctx}: obs"
        );
        // The vector env keeps rewards as f32, as batches are.
        let rewards: Vec<f32> = s.rewards.iter().map(|&x| x as f32).collect();
        assert_eq!(venv.rewards(), &rewards[..], "{ctx}: rewards");
        assert_eq!(venv.terminated(), &s.terminated[..], "{ctx}: terminated");
        assert_eq!(venv.truncated(), &s.truncated[..], "{ctx}: truncated");
        for (i, f) in s.final_obs.iter().enumerate() {
            if let Some(f) = f {
                resets += 1;
                assert_eq!(
                    obs_bits(&venv.final_obs()[i * d..][..d]),
                    f32_bits(f),
                    "{ctx}: final_obs[{i}]"
                );
            }
        }
    }
    assert!(
        resets >= 3,
        "{}: the vector run should autoreset, saw {resets}",
        E::ID
    );
}

/// Saves each recorded episode half-way, loads the words into a fresh env and checks that it
/// finishes the episode as Gymnasium did, then starts the next one as the original does.
fn saved_states_resume<E: Recorded>() {
    let r = reference::<E>();
    for (n, ep) in r.episodes.iter().enumerate() {
        let ctx = format!("{} episode {n} '{}' resumed", E::ID, ep.name);
        let (half, len) = (ep.steps.len() / 2, ep.steps.len());
        let mut original = make::<E>();
        start_episode(&mut original, ep, &ctx);
        replay_steps(&mut original, ep, 0..half, &ctx);
        let words = original.save_state().expect("the env saves its state");
        let mut resumed = make::<E>();
        resumed
            .load_state(&words)
            .unwrap_or_else(|e| panic!("{ctx}: {e}"));
        assert_eq!(resumed.elapsed_steps(), original.elapsed_steps(), "{ctx}");
        replay_steps(&mut resumed, ep, half..len, &ctx);
        replay_steps(&mut original, ep, half..len, &ctx);
        // The random generator resumed too: unseeded resets agree.
        assert_eq!(
            original.reset(None),
            resumed.reset(None),
            "{ctx}: next reset"
        );
    }
}

#[test]
fn the_references_cover_every_way_an_episode_ends() {
    fn check<E: Recorded>() {
        let r = reference::<E>();
        assert!(r.gymnasium.starts_with("1.4"), "{}", r.gymnasium);
        assert!(r.numpy.starts_with("2."), "{}", r.numpy);
        for how in E::ENDINGS {
            assert!(
                r.episodes.iter().any(|e| e.ends_by == *how),
                "{}: no episode ends by {how}",
                E::ID
            );
        }
        // The recordings start from seeded resets and from states set by hand.
        assert!(r.episodes.iter().any(|e| e.start.is_some()), "{}", E::ID);
        // Continuous actions include the bounds themselves and values past both (clipped).
        if let envs::Space::Box { high, .. } = E::new().action_space() {
            let high = f64::from(high[0]);
            let actions: Vec<f64> = r
                .episodes
                .iter()
                .flat_map(|e| &e.steps)
                .filter_map(|s| match &s.action {
                    ActionRecord::Continuous(a) => Some(a[0]),
                    ActionRecord::Discrete(_) => None,
                })
                .collect();
            for (what, hit) in [
                ("at the upper bound", actions.contains(&high)),
                ("at the lower bound", actions.contains(&-high)),
                ("past the upper bound", actions.iter().any(|&a| a > high)),
                ("past the lower bound", actions.iter().any(|&a| a < -high)),
            ] {
                assert!(hit, "{}: no action {what}", E::ID);
            }
        }
    }
    check::<Acrobot>();
    check::<MountainCar>();
    check::<ContinuousMountainCar>();
    check::<Pendulum>();
}

#[test]
fn acrobot_matches_gymnasium_bit_for_bit() {
    episodes_match::<Acrobot>();
    vector_matches::<Acrobot>();
}

#[test]
fn mountain_car_matches_gymnasium_bit_for_bit() {
    episodes_match::<MountainCar>();
    vector_matches::<MountainCar>();
}

#[test]
fn continuous_mountain_car_matches_gymnasium_bit_for_bit() {
    episodes_match::<ContinuousMountainCar>();
    vector_matches::<ContinuousMountainCar>();
}

#[test]
fn pendulum_matches_gymnasium_bit_for_bit() {
    episodes_match::<Pendulum>();
    vector_matches::<Pendulum>();
}

#[test]
fn saved_states_resume_recorded_episodes() {
    saved_states_resume::<Acrobot>();
    saved_states_resume::<MountainCar>();
    saved_states_resume::<ContinuousMountainCar>();
    saved_states_resume::<Pendulum>();
}

/// Loads `words` into a fresh env, expecting a refusal that mentions `expect`.
fn refused<E: Recorded>(words: &[u64], expect: &str) {
    let mut env = make::<E>();
    let err = env
        .load_state(words)
        .expect_err(&format!("{}: {words:?} should be refused", E::ID));
    assert!(
        err.contains(expect),
        "{}: '{err}' should mention '{expect}'",
        E::ID
    );
    // A refused state leaves the env as it was: never reset.
    assert!(env.render().is_none(), "{}", E::ID);
}

/// `[elapsed steps, flags, values…, rng (4 words)]`, corrupted in each part.
fn corrupted_states_are_refused<E: Recorded>() -> Vec<u64> {
    let mut env = make::<E>();
    env.reset(Some(1));
    for _ in 0..5 {
        env.step(E::ACTION);
    }
    let words = env.save_state().expect("the env saves its state");
    assert_eq!(words.len(), 2 + E::SAVED_VALUES + 4, "{}", E::ID);
    refused::<E>(&words[..words.len() - 1], "words");
    refused::<E>(&[words.clone(), vec![0]].concat(), "words");
    for i in 0..E::SAVED_VALUES {
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let mut w = words.clone();
            w[2 + i] = bad.to_bits();
            refused::<E>(&w, "non-finite");
        }
    }
    let mut w = words.clone();
    w[1] |= 1 << 20;
    refused::<E>(&w, "flags");
    let mut w = words.clone();
    w[0] = u64::from(E::MAX_EPISODE_STEPS) + 1;
    refused::<E>(&w, "limit");
    // A state saved before any reset loads, and the env still needs a reset.
    let mut fresh = make::<E>();
    let empty = fresh.save_state().expect("the env saves its state");
    fresh.load_state(&empty).expect("an empty state loads");
    assert!(fresh.render().is_none());
    words
}

#[test]
fn corrupted_saved_states_are_refused_with_a_message() {
    let mut w = corrupted_states_are_refused::<Acrobot>();
    // An angle so large that wrapping it into [-π, π] would take forever.
    w[2] = 1e300f64.to_bits();
    refused::<Acrobot>(&w, "far outside");

    corrupted_states_are_refused::<MountainCar>();

    let mut w = corrupted_states_are_refused::<ContinuousMountainCar>();
    // Marked float32 (as after a step) but holding a value no float32 has.
    w[2] = 0.1f64.to_bits();
    refused::<ContinuousMountainCar>(&w, "float32");

    let mut w = corrupted_states_are_refused::<Pendulum>();
    // The last torque (drawn by render) must be a clipped float32.
    w[4] = 3.0f64.to_bits();
    refused::<Pendulum>(&w, "torque");
}
