"""Records CartPole-v1 trajectories from the real Gymnasium, for envs/tests/cartpole_reference.rs.

    pip install gymnasium==1.4.0 numpy
    python3 envs/tests/data/gen_cartpole_reference.py > envs/tests/data/cartpole_v1_reference.json

Every float is written with repr(), which round-trips exactly: observations are float32
values widened to float64, states are the env's float64 state.
"""

import json
import sys

import gymnasium as gym
import numpy as np


def rollout(env, policy, *, seed, start_state=None, extra_steps_after_end=0, max_steps=600):
    obs, _ = env.reset(seed=seed)
    episode = {"seed": seed, "reset_obs": [float(v) for v in obs]}
    if start_state is not None:
        env.unwrapped.state = np.array(start_state, dtype=np.float64)
        episode["start_state"] = [float(v) for v in start_state]
    episode["steps"] = []
    ended_at = None
    for t in range(max_steps):
        state = env.unwrapped.state
        action = int(policy(state, t))
        obs, reward, terminated, truncated, _ = env.step(action)
        episode["steps"].append(
            {
                "action": action,
                "obs": [float(v) for v in obs],
                "state": [float(v) for v in env.unwrapped.state],
                "reward": float(reward),
                "terminated": bool(terminated),
                "truncated": bool(truncated),
            }
        )
        if ended_at is None and (terminated or truncated):
            ended_at = t
        if ended_at is not None and t >= ended_at + extra_steps_after_end:
            break
    last = episode["steps"][ended_at]
    if last["truncated"]:
        episode["ends_by"] = "truncation"
    elif abs(last["state"][0]) > 2.4:
        episode["ends_by"] = "cart_position"
    else:
        episode["ends_by"] = "pole_angle"
    return episode


def balance(state, _t):
    x, x_dot, theta, theta_dot = state
    return theta + 0.5 * theta_dot + 0.05 * x + 0.1 * x_dot > 0


def drift(state, t):
    # Balances the pole, but every third step pushes right regardless: the pole leans back
    # against the extra pushes and the cart drifts off the left end of the track.
    x, x_dot, theta, theta_dot = state
    return t % 3 == 0 or theta + 0.5 * theta_dot > 0


def main():
    env = gym.make("CartPole-v1")
    rng = np.random.default_rng(2024)
    episodes = []
    # Ends by pole angle: always push right from a fixed start.
    episodes.append(rollout(env, lambda s, t: 1, seed=1, start_state=[0.0, 0.0, 0.03, 0.0],
                            extra_steps_after_end=3))
    # Ends by cart position.
    episodes.append(rollout(env, drift, seed=2, start_state=[0.01, -0.02, 0.0, 0.01]))
    # Ends by truncation at 500, from a fixed start and from a seeded one.
    episodes.append(rollout(env, balance, seed=3, start_state=[0.02, 0.0, -0.01, 0.0]))
    episodes.append(rollout(env, balance, seed=4))
    # Random actions from seeded starts.
    for seed in range(10, 30):
        actions = rng.integers(0, 2, size=600)
        episodes.append(rollout(env, lambda s, t, a=actions: a[t], seed=seed))

    # A vector env with same-step autoreset, as envs::VectorEnv documents.
    num_envs, steps, vseed = 4, 300, 7
    venv = gym.make_vec("CartPole-v1", num_envs=num_envs, vectorization_mode="sync",
                        vector_kwargs={"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP})
    obs, _ = venv.reset(seed=vseed)
    vector = {"num_envs": num_envs, "seed": vseed, "reset_obs": obs.astype(float).tolist(), "steps": []}
    for _ in range(steps):
        actions = rng.integers(0, 2, size=num_envs)
        obs, rewards, terms, truncs, info = venv.step(actions)
        final = [None] * num_envs
        if "final_obs" in info:
            for i in range(num_envs):
                if info["_final_obs"][i]:
                    final[i] = [float(v) for v in info["final_obs"][i]]
        vector["steps"].append({
            "actions": actions.tolist(),
            "obs": obs.astype(float).tolist(),
            "rewards": rewards.astype(float).tolist(),
            "terminated": terms.tolist(),
            "truncated": truncs.tolist(),
            "final_obs": final,
        })

    json.dump({"gymnasium": gym.__version__, "numpy": np.__version__,
               "episodes": episodes, "vector": vector}, sys.stdout)


if __name__ == "__main__":
    main()
