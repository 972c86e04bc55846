"""One Stable-Baselines3 reference run: rl-baselines3-zoo's own training entry point
(rl_zoo3.train.train, i.e. `python -m rl_zoo3.train`) with the zoo's published hyperparameters,
plus the stop-rule callback of sb3_callback.py.

What it measures (see common.py): wall seconds from just before `import rl_zoo3` (which imports
torch, gymnasium and SB3) to the moment the mean return of the last 100 training episodes reaches
the task's stop return, the env steps at that moment, or that it did not within the budget.
Writes one JSON line to --result.

How the zoo's settings are obtained: nothing is copied. The zoo reads its own
rl_zoo3/hyperparams/<algo>.yml (the one shipped in the installed rl-zoo3 package), entry <env id>,
and builds everything as it always does: n_envs, normalize -> VecNormalize, policy_kwargs strings,
lin_<x> schedules, use_sde, n_timesteps, the Monitor wrapper, the seed. The only command-line
settings added here are:
  --seed S                the run's seed
  --device cpu            CPU only
  --num-threads 1         torch.set_num_threads(1) (the zoo's own option)
  --eval-freq -1          no periodic evaluation episodes (the zoo's default evaluates 5 episodes
                          every 25000 steps; we stop on *training* episodes, and evaluation would
                          only add wall time)
  --log-folder <tmp>      the zoo's logs and saved model go to a temporary folder
  -params callback:...    our stop-rule callback (the zoo's documented `callback` hyperparameter;
                          none of the six yml entries sets a callback of its own)
  -n <budget>             only with --horizon budget; by default the zoo's published n_timesteps is
                          kept (it shapes schedules such as DQN's exploration_fraction) and the
                          budget only caps the run.
"""

import common  # first: starts the in-process clock (common.T0)

import argparse
import os
import sys


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--task", required=True, choices=sorted(common.TASKS))
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--result", required=True, help="file for the one-line JSON result")
    ap.add_argument("--workdir", required=True, help="scratch folder (zoo logs, saved model)")
    ap.add_argument("--horizon", choices=["published", "budget"], default="published")
    ap.add_argument("--smoke", action="store_true")
    a = ap.parse_args()

    task = common.TASKS[a.task]
    stop, window, budget = common.smoke_or_task(a.task, a.smoke)
    argv = [
        "rl_zoo3.train", "--algo", task["zoo"], "--env", task["env"], "--seed", str(a.seed),
        "--device", "cpu", "--num-threads", "1", "--eval-freq", "-1",
        "--log-folder", os.path.join(a.workdir, "logs"),
        "-params", "callback:'sb3_callback.StopOnReturn'",
    ]
    if a.horizon == "budget":
        argv += ["-n", str(budget)]
    tracker = common.Tracker(
        a.task, "sb3", a.seed, a.result, stop=stop, window=window, budget=budget,
        meta=dict(env_id=task["env"], driver="rl_zoo3.train " + " ".join(argv[1:]),
                  horizon=a.horizon))
    common.TRACKER = tracker

    from rl_zoo3.train import train  # imports torch, gymnasium, SB3, sb3-contrib
    tracker.mark_imported()

    sys.argv = argv
    try:
        train()
    except common.StopRun:
        pass
    except Exception as e:  # a crash is a result too (recorded, then re-raised for the log)
        tracker.finish(end=f"error: {type(e).__name__}: {e}")
        raise
    # After the clock has stopped: the zoo's published training length, for the record.
    tracker.meta["library_total_steps"] = _zoo_n_timesteps(task) if a.horizon == "published" else budget
    tracker.finish()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # stop right away: no clean-up of the zoo's env/model objects


def _zoo_n_timesteps(task):
    """n_timesteps of the zoo's yml entry, read as the zoo reads it (yaml.safe_load)."""
    import yaml
    import rl_zoo3.utils
    path = os.path.join(os.path.dirname(rl_zoo3.utils.__file__), "hyperparams", task["zoo"] + ".yml")
    with open(path) as f:
        return int(float(yaml.safe_load(f)[task["env"]]["n_timesteps"]))


if __name__ == "__main__":
    main()
