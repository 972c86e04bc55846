"""Records Acrobot-v1, MountainCar-v0, MountainCarContinuous-v0 and Pendulum-v1 trajectories
from the real Gymnasium, for envs/tests/classic_reference.rs.

    pip install gymnasium==1.4.0 numpy==2.4.6
    python3 envs/tests/data/gen_classic_reference.py envs/tests/data

writes one <id>_reference.json per env into the given folder (one JSON object each), and
numpy_math_reference.json with NumPy's float32 sin/cos and scalar powers.

Every float is written with repr(), which round-trips exactly. Observations are float32
values widened to float64. States are what `env.unwrapped.state` holds after the step,
widened to float64: float64 for Acrobot (float32 right after reset), MountainCar and
Pendulum, float32 for MountainCarContinuous after its first step. Rewards are float64 (a
Python float or np.float64). Continuous actions are float32 arrays, as the Rust side passes.

The numbers depend on the machine as NumPy's do: float32 np.sin/np.cos use NumPy's own FMA
polynomial on x86-64 with AVX2/FMA3 (and AArch64), and float64 `**` calls the C library's
pow(). This recording is from x86-64 with FMA3 and glibc 2.36.

Each episode starts from `reset(seed=...)`; some then set `env.unwrapped.state` directly
(`start`) or set it again before a given step (`overrides`), to reach edge cases: the
left wall, the goal, speed limits, both flags on the last step of the time limit.
"""

import json
import math
import os
import random
import sys

import gymnasium as gym
import numpy as np


def floats(values):
    return [float(v) for v in values]


class Recorder:
    """Rolls out episodes of one env id and collects them as JSON-ready dicts."""

    def __init__(self, env_id, continuous):
        self.env_id = env_id
        self.continuous = continuous
        self.env = gym.make(env_id)
        self.episodes = []

    def set_state(self, state, dtype):
        self.env.unwrapped.state = np.array(state, dtype=dtype)
        return {"state": floats(self.env.unwrapped.state), "dtype": np.dtype(dtype).name}

    def action(self, a):
        if self.continuous:
            return np.array([a], dtype=np.float32)
        return int(a)

    def rollout(self, name, policy, *, seed, start_state=None, start_dtype=np.float64,
                overrides=(), extra_steps_after_end=0, max_steps=1100):
        """`policy(state, t)` gives an int (discrete) or a float (continuous, made float32)."""
        env = self.env
        obs, _ = env.reset(seed=seed)
        episode = {"name": name, "seed": seed, "reset_obs": floats(obs),
                   "reset_state": floats(env.unwrapped.state), "start": None, "overrides": []}
        if start_state is not None:
            episode["start"] = self.set_state(start_state, start_dtype)
        overrides = {t: (s, d) for t, s, d in overrides}
        episode["steps"] = []
        ended_at = None
        for t in range(max_steps):
            if t in overrides:
                state, dtype = overrides[t]
                episode["overrides"].append({"before_step": t, **self.set_state(state, dtype)})
            action = self.action(policy(env.unwrapped.state, t))
            obs, reward, terminated, truncated, _ = env.step(action)
            episode["steps"].append({
                "action": floats(action) if self.continuous else action,
                "obs": floats(obs),
                "state": floats(env.unwrapped.state),
                "reward": float(reward),
                "terminated": bool(terminated),
                "truncated": bool(truncated),
            })
            if ended_at is None and (terminated or truncated):
                ended_at = t
            if ended_at is not None and t >= ended_at + extra_steps_after_end:
                break
        if ended_at is None:
            # A short recording of an edge case: the episode goes on.
            episode["ends_by"] = "not_ended"
        else:
            last = episode["steps"][ended_at]
            episode["ends_by"] = ("goal_and_truncation" if last["terminated"] and last["truncated"]
                                  else "truncation" if last["truncated"] else "goal")
        print(f"  {self.env_id} {name!r}: {len(episode['steps'])} steps, {episode['ends_by']}",
              file=sys.stderr)
        self.episodes.append(episode)

    def vector(self, policy, *, num_envs, steps, seed):
        """A SyncVectorEnv with same-step autoreset, as envs::VectorEnv documents.

        `policy(obs_row, t)` gives one env's action from its observation."""
        venv = gym.make_vec(self.env_id, num_envs=num_envs, vectorization_mode="sync",
                            vector_kwargs={"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP})
        obs, _ = venv.reset(seed=seed)
        record = {"num_envs": num_envs, "seed": seed, "reset_obs": obs.astype(float).tolist(),
                  "steps": []}
        for t in range(steps):
            acts = [policy(row, t) for row in obs]
            if self.continuous:
                actions = np.array(acts, dtype=np.float32).reshape(num_envs, 1)
            else:
                actions = np.array(acts, dtype=np.int64)
            obs, rewards, terms, truncs, info = venv.step(actions)
            final = [None] * num_envs
            if "final_obs" in info:
                for i in range(num_envs):
                    if info["_final_obs"][i]:
                        final[i] = floats(info["final_obs"][i])
            record["steps"].append({
                "actions": actions.astype(float).tolist() if self.continuous else actions.tolist(),
                "obs": obs.astype(float).tolist(),
                "rewards": rewards.astype(float).tolist(),
                "terminated": terms.tolist(),
                "truncated": truncs.tolist(),
                "final_obs": final,
            })
        return record

    def dump(self, folder, **extra):
        path = os.path.join(folder, self.env_id.lower().replace("-", "_") + "_reference.json")
        with open(path, "w") as f:
            json.dump({"gymnasium": gym.__version__, "numpy": np.__version__,
                       "env_id": self.env_id, **extra, "episodes": self.episodes}, f)
        print(f"{path}: {len(self.episodes)} episodes, {os.path.getsize(path)} bytes",
              file=sys.stderr)


def random_policy(rng, choices):
    return lambda s, t: rng.choice(choices)


def acrobot(folder, rng):
    r = Recorder("Acrobot-v1", continuous=False)
    # Pumps energy by torquing with the second joint's velocity: reaches the goal in ~100 steps.
    pump = lambda s, t: 2 if s[3] > 0 else 0
    pump_sum = lambda s, t: 2 if s[2] + s[3] > 0 else 0
    for seed in range(3):
        r.rollout(f"pump, seed {seed}", pump, seed=seed, extra_steps_after_end=2 if seed == 0 else 0)
    r.rollout("pump on the summed velocities", pump_sum, seed=5)
    # Random actions: the time limit ends this one.
    r.rollout("random", random_policy(rng, [0, 1, 2]), seed=11)
    # Torquing one way only spins the links: velocity bounds and angle wraps.
    r.rollout("constant +1", lambda s, t: 2, seed=12, max_steps=150)
    # Edge starts: just below the goal height, at the velocity bounds, angles past ±pi.
    r.rollout("near the goal", pump, seed=13, start_state=[1.8, 0.2, 0.5, 0.0])
    r.rollout("at the velocity bounds", lambda s, t: 0, seed=14,
              start_state=[0.0, 0.0, 4 * math.pi, 9 * math.pi], extra_steps_after_end=4)
    r.rollout("angles far outside [-pi, pi]", lambda s, t: 0, seed=15,
              start_state=[13.0, -20.0, 3.0, -6.0], max_steps=60)
    # The 500th step reaches the goal: terminated and truncated together.
    r.rollout("goal on the last step", lambda s, t: 1, seed=16,
              overrides=[(499, [2.2, 0.1, 1.0, 0.0], np.float64)])
    vector = r.vector(lambda o, t: 2 if o[5] > 0 else 0, num_envs=3, steps=260, seed=21)
    r.dump(folder, vector=vector)


def mountain_car(folder, rng):
    r = Recorder("MountainCar-v0", continuous=False)
    # Pushing along the velocity reaches the goal in ~120 steps.
    bang = lambda s, t: 2 if s[1] >= 0 else 0
    for seed in range(3):
        r.rollout(f"velocity sign, seed {seed}", bang, seed=seed,
                  extra_steps_after_end=3 if seed == 0 else 0)
    r.rollout("random", random_policy(rng, [0, 1, 2]), seed=10)
    r.rollout("no push", lambda s, t: 1, seed=11)
    # Into the left wall: the position clips to -1.2 and the velocity is zeroed.
    r.rollout("left wall", lambda s, t: 0 if t < 30 else bang(s, t), seed=12,
              start_state=[-1.15, -0.07])
    r.rollout("exactly at the left wall", lambda s, t: 0, seed=13, start_state=[-1.2, -0.01],
              max_steps=20)
    # Near the goal, at the speed limit, and at the right wall.
    r.rollout("near the goal", lambda s, t: 2, seed=14, start_state=[0.49, 0.005])
    r.rollout("at the goal moving left", lambda s, t: 0, seed=15, start_state=[0.5, -0.001],
              max_steps=5)
    r.rollout("speed limit", lambda s, t: 2, seed=16, start_state=[-0.7, 0.0699])
    r.rollout("negative speed limit", lambda s, t: 0, seed=19, start_state=[0.0, -0.0699],
              max_steps=5)
    r.rollout("right wall", lambda s, t: 2, seed=17, start_state=[0.595, 0.07],
              extra_steps_after_end=2)
    r.rollout("goal on the last step", lambda s, t: 1, seed=18,
              overrides=[(199, [0.49, 0.02], np.float64)])
    vector = r.vector(lambda o, t: 2 if o[1] >= 0 else (0 if t % 7 else 1), num_envs=3,
                      steps=260, seed=31)
    r.dump(folder, vector=vector)


def mountain_car_continuous(folder, rng):
    r = Recorder("MountainCarContinuous-v0", continuous=True)

    def bang(mag):
        return lambda s, t: mag if s[1] >= 0 else -mag

    # Exactly the bounds (force stays np.float32), and past them (force becomes a Python
    # float: min/max return the bound).
    r.rollout("bang-bang at the bounds", bang(1.0), seed=0, extra_steps_after_end=3)
    r.rollout("bang-bang past the bounds", lambda s, t: 3.0 if s[1] >= 0 else -5.0, seed=1)
    r.rollout("bang-bang inside the bounds", bang(0.75), seed=2)
    values = [-5.0, -1.0, -0.999, -0.5, -1e-7, 0.0, 1e-7, 0.3, 0.999, 1.0, 3.0]
    r.rollout("sampled actions incl. out of bounds", lambda s, t: rng.choice(values), seed=3,
              max_steps=300)
    # Random actions in [-1.2, 1.2]: the 999-step limit ends this one.
    r.rollout("uniform random", lambda s, t: rng.uniform(-1.2, 1.2), seed=4)
    # Edge starts, as float32 arrays (the state's dtype after any step) and float64.
    f32 = np.float32
    r.rollout("exactly at the left wall (float32)", lambda s, t: -1.0, seed=5,
              start_state=[-1.2, -0.01], start_dtype=f32, max_steps=20)
    r.rollout("into the left wall (float64)", lambda s, t: -1.0, seed=6,
              start_state=[-1.15, -0.07], max_steps=40)
    r.rollout("into the left wall (float32)", lambda s, t: -3.0, seed=7,
              start_state=[-1.15, -0.07], start_dtype=f32, max_steps=40)
    # Lands exactly on float32(-1.2) with a tiny negative velocity: no clipping, and the
    # float32 comparison `position == -1.2` holds, so the velocity is zeroed.
    v = search_f32_velocity("MountainCarContinuous-v0", -1.2, -0.00074, -1.0,
                            lambda s, _: s[0] == f32(-1.2) and s[1] == 0)
    r.rollout("lands on float32(-1.2)", lambda s, t: -1.0, seed=8,
              start_state=[-1.2, v], start_dtype=f32, max_steps=10)
    # Lands exactly on float32(0.45) = 0.449999988: the goal, compared in float32.
    guess = float(f32(0.45)) - float(f32(0.44)) + 0.0025 * math.cos(3 * float(f32(0.44)))
    v = search_f32_velocity("MountainCarContinuous-v0", 0.44, guess, 0.0,
                            lambda s, term: s[0] == f32(0.45) and term)
    r.rollout("lands on float32(0.45)", lambda s, t: 0.0, seed=9,
              start_state=[0.44, v], start_dtype=f32, extra_steps_after_end=2)
    r.rollout("speed limit (float32)", lambda s, t: 1.0, seed=10,
              start_state=[-0.7, 0.0699], start_dtype=f32)
    r.rollout("speed limit (float64)", lambda s, t: 1.0, seed=11, start_state=[-0.7, 0.0699])
    r.rollout("negative speed limit (float32)", lambda s, t: -3.0, seed=14,
              start_state=[0.0, -0.0699], start_dtype=f32, max_steps=5)
    r.rollout("right wall", lambda s, t: 1.0, seed=12, start_state=[0.59, 0.07],
              start_dtype=f32, extra_steps_after_end=2)
    r.rollout("goal on the last step", lambda s, t: 0.0, seed=13,
              overrides=[(998, [0.44, 0.02], f32)])
    vector = r.vector(lambda o, t: (1.0 if o[1] >= 0 else -1.0) * (0.5 + (t % 5) * 0.5),
                      num_envs=3, steps=320, seed=41)
    r.dump(folder, vector=vector)


def pendulum(folder, rng):
    r = Recorder("Pendulum-v1", continuous=True)
    for seed in range(3):
        r.rollout(f"uniform random, seed {seed}", lambda s, t: rng.uniform(-3.0, 3.0), seed=seed,
                  extra_steps_after_end=2 if seed == 0 else 0)
    values = [-5.0, -2.0, -1.999, -0.5, 0.0, 1e-7, 0.25, 2.0, 3.0]
    r.rollout("sampled actions incl. out of bounds", lambda s, t: rng.choice(values), seed=3)
    # Swings up by torquing along the velocity: the speed clips at 8.
    r.rollout("swing up", lambda s, t: 2.0 if s[1] >= 0 else -2.0, seed=4)
    # The state's angle is never wrapped; angle_normalize must use Python's float modulo.
    r.rollout("large angle, max speed", lambda s, t: 5.0, seed=5, start_state=[100.0, 8.0])
    r.rollout("large negative angle", lambda s, t: -5.0, seed=6, start_state=[-57.3, -9.0],
              max_steps=50)
    r.rollout("exactly pi", lambda s, t: 0.0, seed=7, start_state=[math.pi, 0.0], max_steps=5)
    r.rollout("exactly -pi", lambda s, t: 0.0, seed=8, start_state=[-math.pi, 0.0], max_steps=5)
    vector = r.vector(lambda o, t: 2.0 if o[2] >= 0 else -2.0, num_envs=2, steps=420, seed=51)
    r.dump(folder, vector=vector)


def numpy_math(folder):
    """NumPy's scalar functions that are not what Rust's std computes, for the unit tests of
    envs/src/np_math.rs."""
    g = np.random.default_rng(7)
    # float32 np.sin/np.cos (Acrobot's reset observations use them): NumPy's own polynomial.
    xs = np.concatenate([np.linspace(-0.1, 0.1, 401), g.uniform(-0.1, 0.1, 600),
                         g.uniform(-8, 8, 400), g.uniform(-1e5, 1e5, 50),
                         [0.0, -0.0, math.pi, 71476.0625, 71477.0, 117435.992, 117436.0, 1e30]])
    trig = [[float(x), float(np.cos(x)), float(np.sin(x))] for x in xs.astype(np.float32)]
    # x ** 2 on a float64 or float32 scalar is C pow()/powf(), which is not always x * x.
    square, square32 = [], []
    while len(square) < 40 or len(square32) < 40:
        x = np.float64(g.uniform(-20, 20))
        if x ** 2 != x * x and len(square) < 40:
            square.append([float(x), float(x ** 2)])
        y = np.float32(x)
        if y ** 2 != y * y and len(square32) < 40:
            square32.append([float(y), float(y ** 2)])
    path = os.path.join(folder, "numpy_math_reference.json")
    with open(path, "w") as f:
        json.dump({"numpy": np.__version__, "float32_cos_sin": trig, "float64_pow2": square,
                   "float32_pow2": square32}, f)
    print(f"{path}: {os.path.getsize(path)} bytes", file=sys.stderr)


def search_f32_velocity(env_id, position, guess, action, want):
    """The float32 start velocity nearest `guess` from which one step with `action` lands in
    a state for which `want(state, terminated)` holds: edge cases that only float32
    comparisons reach (NumPy 2 compares np.float32 with a Python float in float32)."""
    env = gym.make(env_id).unwrapped
    env.reset(seed=0)
    v = np.float32(guess)
    up, down = v, v
    for _ in range(100000):
        for cand in (up, down):
            env.state = np.array([position, cand], dtype=np.float32)
            _, _, terminated, _, _ = env.step(np.array([action], dtype=np.float32))
            if want(env.state, terminated):
                return float(cand)
        up = np.nextafter(up, np.float32(1))
        down = np.nextafter(down, np.float32(-1))
    raise RuntimeError("no start velocity found")


def main():
    folder = sys.argv[1] if len(sys.argv) > 1 else "."
    acrobot(folder, random.Random(1))
    mountain_car(folder, random.Random(2))
    mountain_car_continuous(folder, random.Random(3))
    pendulum(folder, random.Random(4))
    numpy_math(folder)


if __name__ == "__main__":
    main()
