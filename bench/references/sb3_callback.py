"""The SB3 callback that applies the stop rule of common.py to an rl-zoo3 training run.

What it measures: after every vectorised env step, each info dict that carries an "episode" entry
(written by SB3's Monitor wrapper, which the zoo puts directly around each raw env, i.e. *inside*
VecNormalize, so the return is the raw, unnormalised one) is one completed training episode; the
env-step count is the model's `num_timesteps` (all envs together). The tracker raises
common.StopRun when the last-100 mean reaches the stop return or the step count reaches the budget.

The zoo creates it by name from the `callback` hyperparameter (sb3_run.py passes
`-params callback:"'sb3_callback.StopOnReturn'"`), exactly as it would a callback listed in the
zoo's own yml. The tracker itself is handed over through `common.TRACKER` by sb3_run.py (same
process, same module object).

Note on ordering inside SB3 2.x's collect_rollouts: env.step(), num_timesteps += n_envs,
callback.on_step(), then _update_info_buffer(). So `model.ep_info_buffer` lags one step behind
here; the episodes are read from this step's `infos` instead, which is exact.
"""

from stable_baselines3.common.callbacks import BaseCallback

import common


class StopOnReturn(BaseCallback):
    def __init__(self, verbose=0):
        super().__init__(verbose)
        self.tracker = common.TRACKER

    def _on_step(self) -> bool:
        for info in self.locals["infos"]:
            ep = info.get("episode")
            if ep is not None:
                self.tracker.episode(ep["r"], steps=self.num_timesteps)
        self.tracker.check_budget(steps=self.num_timesteps)
        return True
