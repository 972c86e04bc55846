#!/usr/bin/env bash
# The tuned examples, five seeds each: does each reach its stop return (mean of the last 100
# episodes, with at least 100 episodes done) inside its env-step budget, how many env steps
# and how much wall time (process start to exit) does it take.
# Usage: bench/examples.sh [example ...]   (default: every example but cartpole-ppo)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p rllib
bin=$PWD/target/release/rllib
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
examples=("$@")
if [ ${#examples[@]} -eq 0 ]; then
    examples=(cartpole-dqn acrobot-ppo mountaincar-dqn pendulum-ppo pendulum-sac mountaincarcontinuous-sac)
fi

median() { sort -g | awk '{v[NR] = $1} END {if (NR == 0) print "-"; else print v[int((NR + 1) / 2)]}'; }

printf '| example | stop return | budget (env steps) | reached | env steps (median) | wall s (median) | wall s (min–max) |\n'
printf '| --- | --- | --- | --- | --- | --- | --- |\n'
for ex in "${examples[@]}"; do
    yaml=$("$bin" example get "$ex")
    stop=$(echo "$yaml" | awk '/episode_return_mean:/ {print $2; exit}')
    budget=$(echo "$yaml" | awk '/num_env_steps_sampled_lifetime:/ {print $2; exit}')
    : >"$out/$ex"
    for s in 1 2 3 4 5; do
        /usr/bin/time -f "%e" -o "$out/time" "$bin" example run "$ex" --seed "$s" \
            --output-dir "$out/runs" >"$out/log" 2>&1 || true
        wall=$(cat "$out/time")
        steps=$(grep -oE 'env steps: [0-9]+' "$out/log" | grep -oE '[0-9]+' || echo 0)
        episodes=$(grep -oE 'episodes: [0-9]+' "$out/log" | tail -1 | grep -oE '[0-9]+' || echo 0)
        reached=0
        if grep -q 'Stopped: env_runners/episode_return_mean' "$out/log" && [ "$episodes" -ge 100 ]; then
            reached=1
        fi
        echo "$s $reached $steps $wall $episodes" >>"$out/$ex"
        echo "  $ex seed $s: reached $reached, $steps env steps, $episodes episodes, $wall s" >&2
    done
    ok=$(awk '{n += $2} END {print n}' "$out/$ex")
    steps_med=$(awk '$2 == 1 {print $3}' "$out/$ex" | median)
    wall_med=$(awk '$2 == 1 {print $4}' "$out/$ex" | median)
    range=$(awk '$2 == 1 {print $4}' "$out/$ex" | sort -g | awk 'NR == 1 {lo = $1} {hi = $1} END {if (NR) print lo "–" hi; else print "-"}')
    printf '| %s | %s | %s | %s/5 | %s | %s | %s |\n' "$ex" "$stop" "$budget" "$ok" "$steps_med" "$wall_med" "$range"
done
