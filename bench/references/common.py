"""Shared by the reference drivers (sb3_run.py, cleanrl_run.py) and the orchestrator (run_all.py).

What it measures: the in-process clock. `T0` is taken when this module is imported, which each
driver does *first*, before it imports torch, gymnasium or the RL library; so a run's
`wall_to_threshold_s` = (moment the threshold was met) - T0 includes library imports, env and model
construction and training, but not the interpreter's own start-up (`startup_s`, read from /proc,
is recorded separately, and the orchestrator also records the whole process's wall time,
`process_s`).

The stop rule (the same for both libraries): after each completed *training* episode (as SB3's
Monitor / CleanRL's RecordEpisodeStatistics see it: the raw, unnormalised return), if at least
`window` (100) episodes have completed and the mean return of the last `window` is >= the task's
stop return, the run has reached the task: the time and env-step count are taken at that moment
and the run is stopped at once (StopRun is raised through the library's training loop). A run
also stops, unreached, when its env-step count reaches the budget, or when the library's own
training loop ends first (its published training length is shorter than the budget).

Standard library only: the orchestrator imports it too.
"""

import json
import math
import os
import time
from collections import deque

T0 = time.perf_counter()  # keep this the first statement that runs in a driver

# The six tasks. `cleanrl`: (module, venv, the script's default --total-timesteps); the venv is the
# one whose gym/gymnasium API the script is written for (see bench/references.sh).
# `zoo`: the rl-zoo3 algorithm name; its hyperparameters come from the yml shipped inside the
# installed rl_zoo3 package (rl_zoo3/hyperparams/<algo>.yml, entry <env>), read by the zoo itself.
TASKS = {
    "cartpole-dqn": dict(
        env="CartPole-v1", zoo="dqn", stop=450.0, budget=200_000,
        cleanrl=("cleanrl.dqn", "cleanrl-gymnasium", 500_000)),
    "acrobot-ppo": dict(
        env="Acrobot-v1", zoo="ppo", stop=-100.0, budget=1_000_000,
        cleanrl=("cleanrl.ppo", "cleanrl-gym", 500_000)),
    "mountaincar-dqn": dict(
        env="MountainCar-v0", zoo="dqn", stop=-110.0, budget=120_000,
        cleanrl=("cleanrl.dqn", "cleanrl-gymnasium", 500_000)),
    "pendulum-ppo": dict(
        env="Pendulum-v1", zoo="ppo", stop=-300.0, budget=400_000,
        cleanrl=("cleanrl.ppo_continuous_action", "cleanrl-gymnasium", 1_000_000)),
    "pendulum-sac": dict(
        env="Pendulum-v1", zoo="sac", stop=-250.0, budget=40_000,
        cleanrl=("cleanrl.sac_continuous_action", "cleanrl-gym", 1_000_000)),
    "mountaincarcontinuous-sac": dict(
        env="MountainCarContinuous-v0", zoo="sac", stop=90.0, budget=50_000,
        cleanrl=("cleanrl.sac_continuous_action", "cleanrl-gym", 1_000_000)),
}

WINDOW = 100

# --smoke: plumbing only. Any return passes, over a window of 2 episodes, within 3000 env steps.
SMOKE = dict(stop=float("-inf"), window=2, budget=3000)


class StopRun(BaseException):
    """Raised from inside the library's training loop to end the run at once.

    A BaseException (like KeyboardInterrupt) so that no `except Exception` in library code can
    swallow it.
    """


def _startup_seconds():
    """Seconds from this process's exec to T0 (Linux /proc; None elsewhere)."""
    try:
        with open("/proc/self/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        start_ticks = int(fields[19])  # field 22 of stat(5): starttime, in clock ticks since boot
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        now = time.perf_counter()
        return round(uptime - start_ticks / os.sysconf("SC_CLK_TCK") - (now - T0), 3)
    except (OSError, ValueError, IndexError):
        return None


class Tracker:
    """Counts env steps and training episodes, applies the stop rule, writes the result line."""

    def __init__(self, task, library, seed, result_path, *, stop, window, budget, meta=None):
        self.task, self.library, self.seed = task, library, seed
        self.result_path = result_path
        self.stop, self.window, self.budget = stop, window, budget
        self.meta = dict(meta or {})
        self.returns = deque(maxlen=window)
        self.episodes = 0
        self.steps = 0
        self.end = None           # "threshold" | "budget" | "library_total" | "error: ..."
        self.t_end = None
        self.t_imported = None
        self.startup_s = _startup_seconds()

    def mark_imported(self):
        self.t_imported = time.perf_counter()

    def mean(self):
        return sum(self.returns) / len(self.returns) if self.returns else None

    def episode(self, ret, steps=None):
        """One training episode finished with return `ret`; `steps` = env steps so far, if the
        caller counts them (SB3) rather than step() (CleanRL). Raises StopRun on the threshold."""
        if steps is not None:
            self.steps = steps
        self.episodes += 1
        self.returns.append(float(ret))
        if self.episodes >= self.window and self.mean() >= self.stop:
            self._stop("threshold")

    def step(self, n=1):
        self.steps += n

    def check_budget(self, steps=None):
        if steps is not None:
            self.steps = steps
        if self.steps >= self.budget:
            self._stop("budget")

    def _stop(self, why):
        self.end, self.t_end = why, time.perf_counter()
        raise StopRun(why)

    def finish(self, end=None):
        """Write the one-line JSON result (called once, after the library loop has returned or
        been stopped)."""
        if self.end is None:
            self.end, self.t_end = end or "library_total", time.perf_counter()
        elif end is not None and end.startswith("error"):
            self.end = end
        reached = self.end == "threshold"
        wall = round(self.t_end - T0, 3)
        rec = dict(
            task=self.task, library=self.library, seed=self.seed,
            stop_return=self.stop if math.isfinite(self.stop) else str(self.stop), window=self.window, budget=self.budget,
            reached=reached, end=self.end,
            wall_to_threshold_s=wall if reached else None,
            wall_to_end_s=wall,
            env_steps=self.steps, episodes=self.episodes,
            last_window_mean=None if self.mean() is None else round(self.mean(), 3),
            startup_s=self.startup_s,
            import_s=None if self.t_imported is None else round(self.t_imported - T0, 3),
            **self.meta,
        )
        with open(self.result_path, "w") as f:
            f.write(json.dumps(rec) + "\n")
        return rec


def smoke_or_task(task_name, smoke):
    """(stop, window, budget) for a task, or the smoke settings."""
    t = TASKS[task_name]
    if smoke:
        return SMOKE["stop"], SMOKE["window"], SMOKE["budget"]
    return t["stop"], WINDOW, t["budget"]
