"""One PureJaxRL reference run: PPO on gymnax's CartPole-v1 with PureJaxRL's own `make_train`
(purejaxrl/ppo.py, imported from a checkout given by --purejaxrl, not copied) and the config of
that file's `__main__` block, on the CPU (JAX_PLATFORMS=cpu).

Config (ppo.py's `__main__`): 4 envs x 128 steps, 4 epochs of 4 minibatches (128 rows), lr 2.5e-4
annealed linearly to 0 over the run, gamma 0.99, GAE lambda 0.95, clip 0.2 (also on the value),
entropy 0.01, value coefficient 0.5, gradient norm 0.5, 64x64 tanh separate actor and critic,
TOTAL_TIMESTEPS from --total-timesteps (default 500000). Two deliberate differences from that
block: DEBUG is False (True prints every finished episode through a host callback, which is not
part of training), and TOTAL_TIMESTEPS is an int (ppo.py's 5e5 is a float, which makes
NUM_UPDATES a float; it would be 976 either way). PureJaxRL runs NUM_UPDATES =
total // 128 // 4 whole iterations, so 500000 means 976 x 512 = 499,712 env steps.

What it measures:
  import_s           seconds from the start of this script to jax, gymnax and ppo.py imported
  compile_and_run_s  the first call of jax.jit(make_train(config)) on PRNGKey(seed), tracing and
                     XLA compilation included, until jax.block_until_ready returns
  compiled_run_s     a second call of the same, already compiled, function on the same key
  steps_to_475       from the first call's metrics (per env step: `returned_episode` flags and
                     `returned_episode_returns`, shape [updates, 128, 4]): the env step (all 4 envs
                     together, i.e. (t + 1) * 4 for the t-th vectorised step) at which the mean
                     return of the last 100 finished episodes first reaches 475, or "never"
  steps_to_475_batch_end  the same rounded up to the end of its 512-step iteration (how
                     bench/small_batches.sh reports ours: per training iteration)
Prints one JSON line to stdout.

PureJaxRL's wrappers.py imports brax and navix at module level, for wrappers that CartPole does
not use. Where they are not installed, empty stand-in modules are put in sys.modules before the
import, so that neither (nor mujoco etc.) has to be installed; nothing else is changed.
gymnax must be 0.0.x (0.0.9): gymnax 1.0 returns six values from step (terminated and truncated
apart), which wrappers.py cannot unpack; this is checked before the import.
"""

import time

T0 = time.perf_counter()  # first statement: the in-process clock

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import types

os.environ.setdefault("JAX_PLATFORMS", "cpu")

THRESHOLD = 475.0
WINDOW = 100


def stub_missing():
    """Empty stand-ins for brax / navix, only for the modules that are not installed."""
    stubbed = []
    if importlib.util.find_spec("brax") is None:
        for name in ["brax", "brax.envs", "brax.envs.wrappers", "brax.envs.wrappers.training"]:
            sys.modules[name] = types.ModuleType(name)
        sys.modules["brax"].envs = sys.modules["brax.envs"]
        sys.modules["brax.envs"].wrappers = sys.modules["brax.envs.wrappers"]
        sys.modules["brax.envs.wrappers"].training = sys.modules["brax.envs.wrappers.training"]
        for cls in ["EpisodeWrapper", "AutoResetWrapper"]:
            setattr(sys.modules["brax.envs.wrappers.training"], cls, None)
        stubbed.append("brax")
    if importlib.util.find_spec("navix") is None:
        sys.modules["navix"] = types.ModuleType("navix")
        stubbed.append("navix")
    return stubbed


def purejaxrl_commit(root):
    try:
        out = subprocess.run(["git", "-C", root, "rev-parse", "HEAD"], capture_output=True,
                             text=True, check=True)
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    # An exported tree (git archive) has no .git: bench/purejaxrl.sh's instructions write COMMIT.
    try:
        with open(os.path.join(root, "COMMIT")) as f:
            return f.read().strip() or "unknown"
    except OSError:
        return "unknown"


def versions():
    from importlib.metadata import version, PackageNotFoundError
    import platform
    out = {"python": platform.python_version()}
    for name in ["jax", "jaxlib", "flax", "optax", "distrax", "gymnax", "chex", "numpy",
                 "tfp-nightly", "tensorflow-probability"]:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            pass
    return out


def steps_to_threshold(metrics, num_envs):
    """Env step (all envs) at which the mean of the last WINDOW finished returns first >= 475."""
    import numpy as np
    done = np.asarray(metrics["returned_episode"]).reshape(-1, num_envs)   # [time, env]
    rets = np.asarray(metrics["returned_episode_returns"]).reshape(-1, num_envs)
    idx = np.flatnonzero(done.ravel())   # finished episodes, in order (time-major, then env)
    if len(idx) < WINDOW:
        return None, len(idx)
    r = rets.ravel()[idx].astype(np.float64)
    c = np.concatenate([[0.0], np.cumsum(r)])
    means = (c[WINDOW:] - c[:-WINDOW]) / WINDOW   # means[i]: episodes i .. i + WINDOW - 1
    hit = np.flatnonzero(means >= THRESHOLD)
    if len(hit) == 0:
        return None, len(idx)
    t = idx[hit[0] + WINDOW - 1] // num_envs   # vectorised step of the episode that completed it
    return int((t + 1) * num_envs), len(idx)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--purejaxrl", required=True,
                    help="a checkout of github.com/luchris429/purejaxrl (holds purejaxrl/ppo.py)")
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--total-timesteps", type=int, default=500_000)
    args = ap.parse_args()

    root = os.path.abspath(args.purejaxrl)
    src = os.path.join(root, "purejaxrl")
    if not os.path.isfile(os.path.join(src, "ppo.py")):
        sys.exit(f"no purejaxrl/ppo.py under {root}")
    from importlib.metadata import version
    if int(version("gymnax").split(".")[0]) >= 1:
        # gymnax 1.0 changed Environment.step to return (obs, state, reward, terminated,
        # truncated, info); PureJaxRL's wrappers.py unpacks the five values of gymnax 0.0.x.
        sys.exit(f"gymnax {version('gymnax')} is not supported by PureJaxRL's wrappers.py "
                 "(step returns 6 values since 1.0): install gymnax==0.0.9")
    stubbed = stub_missing()
    sys.path.insert(0, src)   # ppo.py does `from wrappers import ...`

    import jax
    import ppo   # PureJaxRL's purejaxrl/ppo.py
    import_s = time.perf_counter() - T0

    config = {
        "LR": 2.5e-4,
        "NUM_ENVS": 4,
        "NUM_STEPS": 128,
        "TOTAL_TIMESTEPS": args.total_timesteps,
        "UPDATE_EPOCHS": 4,
        "NUM_MINIBATCHES": 4,
        "GAMMA": 0.99,
        "GAE_LAMBDA": 0.95,
        "CLIP_EPS": 0.2,
        "ENT_COEF": 0.01,
        "VF_COEF": 0.5,
        "MAX_GRAD_NORM": 0.5,
        "ACTIVATION": "tanh",
        "ENV_NAME": "CartPole-v1",
        "ANNEAL_LR": True,
        "DEBUG": False,
    }
    rng = jax.random.PRNGKey(args.seed)
    train_jit = jax.jit(ppo.make_train(config))   # make_train fills NUM_UPDATES, MINIBATCH_SIZE

    t = time.perf_counter()
    out = jax.block_until_ready(train_jit(rng))
    compile_and_run_s = time.perf_counter() - t

    t = time.perf_counter()
    out2 = jax.block_until_ready(train_jit(rng))
    compiled_run_s = time.perf_counter() - t
    del out2

    steps, episodes = steps_to_threshold(out["metrics"], config["NUM_ENVS"])
    batch = config["NUM_ENVS"] * config["NUM_STEPS"]
    print(json.dumps({
        "seed": args.seed,
        "compile_and_run_s": round(compile_and_run_s, 3),
        "compiled_run_s": round(compiled_run_s, 3),
        "steps_to_475": steps if steps is not None else "never",
        "steps_to_475_batch_end": -(-steps // batch) * batch if steps is not None else "never",
        "import_s": round(import_s, 3),
        "env_steps_run": int(config["NUM_UPDATES"]) * batch,
        "episodes": episodes,
        "total_timesteps": args.total_timesteps,
        "stubbed_modules": stubbed,
        "jax_devices": [str(d) for d in jax.devices()],
        "versions": versions(),
        "purejaxrl_commit": purejaxrl_commit(root),
    }), flush=True)


if __name__ == "__main__":
    main()
