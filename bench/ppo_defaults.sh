#!/usr/bin/env bash
# RLlib's PPO defaults on CartPole-v1 (`rllib train --algo PPO --env CartPole-v1`: 2 env runners,
# train_batch_size 4000, 30 epochs of 128-row minibatches, separate [256, 256] tanh networks)
# to a 100-episode mean return of 475, five seeds, beside the compute limit of one update
# (its FLOPs at this machine's measured SGEMM rate on every core, from
# `cargo bench -p algorithms --bench compute_limit`).
# Usage: bench/ppo_defaults.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p rllib
bin=$PWD/target/release/rllib
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
median() { sort -g | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }
for s in 1 2 3 4 5; do
    /usr/bin/time -f "%e" -o "$out/time" "$bin" train --algo PPO --env CartPole-v1 --seed "$s" \
        --stop '{"env_runners/episode_return_mean": 475}' --output-dir "$out/runs" >"$out/log" 2>&1
    trial=$(ls -d "$out"/runs/*/*/ | tail -1)
    iters=$(($(wc -l <"$trial/progress.csv") - 1))
    learner=$(python3 - "$trial/progress.csv" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
ms = sorted(float(r["timers/learner_update_timer"]) for r in rows)
print(f"{ms[len(ms) // 2]:.3f}")
PY
)
    echo "$(cat "$out/time") $iters $learner" >>"$out/runs.txt"
    echo "  seed $s: $(cat "$out/time") s, $iters iterations, learner $learner s per update" >&2
    rm -rf "$out/runs"
done
limit=$(cargo bench -q -p algorithms --bench compute_limit 2>/dev/null | awk '/compute limit per update/ {print $5}')
printf '| measure (5 seeds) | median | min-max |\n| --- | --- | --- |\n'
for c in 1 2 3; do
    name=$(echo "wall s to 475, process start to exit|training iterations|learner s per update" | cut -d'|' -f$c)
    med=$(awk -v c=$c '{print $c}' "$out/runs.txt" | median)
    range=$(awk -v c=$c '{print $c}' "$out/runs.txt" | sort -g | awk 'NR == 1 {lo = $1} {hi = $1} END {print lo "-" hi}')
    printf '| %s | %s | %s |\n' "$name" "$med" "$range"
done
printf '| compute limit of one update (SGEMM rate of every core) | %s | |\n' "$limit"
