"""One CleanRL reference run: the installed `cleanrl` package's own script (e.g. cleanrl/dqn.py),
run unmodified as `__main__` (like `python -m cleanrl.dqn --env-id ... --seed ...`) with its
published defaults, plus a stop-rule hook.

What it measures (see common.py): wall seconds from just before torch / gym(nasium) / the script
are imported to the moment the mean return of the last 100 training episodes reaches the task's
stop return, the env steps at that moment, or that it did not within the budget. Writes one JSON
line to --result.

The hook: before the script runs, `RecordEpisodeStatistics` in gym(nasium).wrappers (the wrapper
every CleanRL script puts directly around each raw env, inside any normalisation wrappers) is
replaced by a subclass that behaves identically and, in addition, counts each env step and sums
the raw rewards; when an episode ends (terminated or truncated / done) it hands the return to the
tracker, which raises common.StopRun through the script's loop on the threshold or on the budget.
Env steps are counted per single env (so with ppo.py's 4 envs the count can exceed CleanRL's own
`global_step` by up to 3 at the moment of the stop).

Command-line settings added to the script's defaults:
  --env-id E --seed S
  --cuda False            CPU only
  --track False --capture-video False   (their defaults anyway: no wandb, no videos)
  --total-timesteps B     only with --horizon budget; by default the script's own default
                          (500000 for dqn.py and ppo.py, 1000000 for ppo_continuous_action.py and
                          sac_continuous_action.py) is kept, since it shapes schedules (dqn.py's
                          epsilon decay over exploration_fraction * total_timesteps, ppo's
                          learning-rate annealing), and the budget only caps the run.
The script's TensorBoard SummaryWriter is left on (it is part of CleanRL's loop); it writes into
the run's temporary --workdir. torch.set_num_threads(1) is called before the script starts.
"""

import common  # first: starts the in-process clock (common.T0)

import argparse
import importlib
import importlib.util
import os
import runpy
import sys


def install_hook(gym_module, tracker):
    """Replace gym_module.wrappers.RecordEpisodeStatistics by a counting subclass."""
    base = gym_module.wrappers.RecordEpisodeStatistics

    class RecordEpisodeStatisticsWithStop(base):
        def reset(self, **kwargs):
            self._refbench_return = 0.0
            return super().reset(**kwargs)

        def step(self, action):
            out = super().step(action)
            # gymnasium: (obs, reward, terminated, truncated, info); gym 0.23: (obs, reward, done, info)
            done = (out[2] or out[3]) if len(out) == 5 else out[2]
            self._refbench_return = getattr(self, "_refbench_return", 0.0) + float(out[1])
            tracker.step()
            if done:
                ret, self._refbench_return = self._refbench_return, 0.0
                tracker.episode(ret)
            tracker.check_budget()
            return out

    RecordEpisodeStatisticsWithStop.__name__ = base.__name__
    RecordEpisodeStatisticsWithStop.__qualname__ = base.__qualname__
    gym_module.wrappers.RecordEpisodeStatistics = RecordEpisodeStatisticsWithStop


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--task", required=True, choices=sorted(common.TASKS))
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--result", required=True, help="file for the one-line JSON result")
    ap.add_argument("--workdir", required=True, help="scratch folder (the script's runs/ TensorBoard logs)")
    ap.add_argument("--horizon", choices=["published", "budget"], default="published")
    ap.add_argument("--smoke", action="store_true")
    a = ap.parse_args()

    task = common.TASKS[a.task]
    module, _venv, default_total = task["cleanrl"]
    stop, window, budget = common.smoke_or_task(a.task, a.smoke)
    script_args = ["--env-id", task["env"], "--seed", str(a.seed), "--cuda", "False",
                   "--track", "False", "--capture-video", "False"]
    total = default_total
    if a.horizon == "budget":
        script_args += ["--total-timesteps", str(budget)]
        total = budget
    tracker = common.Tracker(
        a.task, "cleanrl", a.seed, a.result, stop=stop, window=window, budget=budget,
        meta=dict(env_id=task["env"], driver=f"python -m {module} " + " ".join(script_args),
                  horizon=a.horizon, library_total_steps=total))

    # The libraries the script imports (importing them here first changes nothing but lets the
    # import time be recorded separately). Which gym the script uses is read from its source.
    import torch
    torch.set_num_threads(1)
    spec = importlib.util.find_spec(module)
    with open(spec.origin) as f:
        source = f.read()
    gym_name = "gymnasium" if "import gymnasium as gym" in source else "gym"
    gym_module = importlib.import_module(gym_name)
    importlib.import_module(gym_name + ".wrappers")
    import torch.utils.tensorboard  # noqa: F401  (SummaryWriter)
    if "stable_baselines3" in source:
        import stable_baselines3.common.buffers  # noqa: F401
    tracker.mark_imported()
    tracker.meta["gym_api"] = f"{gym_name} {gym_module.__version__}"
    install_hook(gym_module, tracker)

    os.makedirs(a.workdir, exist_ok=True)
    os.chdir(a.workdir)  # the script writes runs/<run_name>/ (TensorBoard) relative to the cwd
    sys.argv = [spec.origin] + script_args
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    except common.StopRun:
        pass
    except Exception as e:  # a crash is a result too (recorded, then re-raised for the log)
        tracker.finish(end=f"error: {type(e).__name__}: {e}")
        raise
    tracker.finish()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # stop right away: no wait for the SummaryWriter's flush thread


if __name__ == "__main__":
    main()
