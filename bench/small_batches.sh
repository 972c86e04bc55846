#!/usr/bin/env bash
# PPO with small batches, as CleanRL's ppo.py and PureJaxRL's PPO run CartPole-v1 by
# default: 4 envs x 128 steps (512-step batches), 4 epochs of 128-row minibatches, 64x64
# tanh policy and value networks, lr 2.5e-4 annealed to 0, gamma 0.99, GAE lambda 0.95,
# clip 0.2, entropy 0.01, value coefficient 0.5, gradient norm 0.5, no KL term, 500,000 env
# steps; sampling in the driver as those scripts do. Five seeds: wall time from process start
# to exit (median, min-max), learner milliseconds per iteration, env steps until the mean
# return of the last 100 episodes first reaches 475.
# Usage: bench/small_batches.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p rllib
bin=$PWD/target/release/rllib
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
cfg='{"num_env_runners": 0, "num_envs_per_env_runner": 4, "train_batch_size": 512,
      "minibatch_size": 128, "num_epochs": 4, "lr": 0.00025,
      "lr_schedule": [[0, 0.00025], [500000, 0.0]], "gamma": 0.99, "lambda": 0.95,
      "clip_param": 0.2, "entropy_coeff": 0.01, "vf_loss_coeff": 0.5, "vf_clip_param": 10000.0,
      "grad_clip": 0.5, "use_kl_loss": false,
      "model": {"fcnet_hiddens": [64, 64], "fcnet_activation": "tanh", "vf_share_layers": false}}'
median() { sort -g | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }
for s in 1 2 3 4 5; do
    /usr/bin/time -f "%e" -o "$out/time" "$bin" train --algo PPO --env CartPole-v1 --seed "$s" \
        --config "$cfg" --stop '{"num_env_steps_sampled_lifetime": 500000}' \
        --output-dir "$out/runs" >/dev/null 2>&1
    trial=$(ls -d "$out"/runs/*/*/ | tail -1)
    # progress.csv: the first row whose 100-episode mean is >= 475, and the learner's time.
    read -r steps learner_ms < <(python3 - "$trial/progress.csv" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
hit = next((r for r in rows if r["env_runners/episode_return_mean"] and
            float(r["env_runners/episode_return_mean"]) >= 475), None)
ms = sorted(float(r["timers/learner_update_timer"]) * 1e3 for r in rows)
print(hit["num_env_steps_sampled_lifetime"] if hit else "never", f"{ms[len(ms) // 2]:.2f}")
PY
)
    echo "$(cat "$out/time") $steps $learner_ms" >>"$out/runs.txt"
    echo "  seed $s: $(cat "$out/time") s, 475 at $steps env steps, learner $learner_ms ms per iteration" >&2
    rm -rf "$out/runs"
done
printf '| measure (5 seeds) | median | min-max |\n| --- | --- | --- |\n'
for c in 1 2 3; do
    name=$(echo "wall s, process start to exit (500,000 env steps)|env steps to a 100-episode mean of 475|learner ms per iteration" | cut -d'|' -f$c)
    med=$(awk -v c=$c '{print $c}' "$out/runs.txt" | median)
    range=$(awk -v c=$c '{print $c}' "$out/runs.txt" | sort -g | awk 'NR == 1 {lo = $1} {hi = $1} END {print lo "-" hi}')
    printf '| %s | %s | %s |\n' "$name" "$med" "$range"
done
