#!/usr/bin/env bash
# Speed and learning efficiency on CartPole PPO, in one table (issue 5's targets).
# Each figure is the median over seeds 1..5 (or 5 repeats); wall time is process start to exit.
# Usage: bench/perf.sh        (Linux: uses /usr/bin/time for peak RSS)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p rllib
bin=./target/release/rllib
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

median() { sort -g | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }

# run LABEL ARGS...: five seeds; records wall seconds, peak RSS (KB) and env steps.
run() {
    local label=$1; shift
    for s in 1 2 3 4 5; do
        /usr/bin/time -f "%e %M" -o "$out/time" "$bin" "$@" --seed "$s" --output-dir "$out/runs" >"$out/log" 2>&1
        steps=$(grep -oE 'env steps: [0-9]+' "$out/log" | grep -oE '[0-9]+')
        read -r wall rss <"$out/time"
        echo "$wall $rss $steps" >>"$out/$label"
    done
}

run to150 example run cartpole-ppo
run to475 example run cartpole-ppo --stop '{"env_runners/episode_return_mean": 475}'
run startup example run cartpole-ppo --stop '{"training_iteration": 1}' \
    --config '{"train_batch_size": 32, "minibatch_size": 32, "num_epochs": 1}'
tp_cfg='{"train_batch_size": 4096, "minibatch_size": 512, "num_epochs": 4, "num_envs_per_env_runner": 32, "lr": 0.0003, "model": {"fcnet_hiddens": [64, 64], "fcnet_activation": "tanh"}}'
for s in 1 2 3 4 5; do
    "$bin" train --seed "$s" --num-env-runners 2 --output-dir "$out/tp" --stop '{"training_iteration": 30}' \
        --config "$tp_cfg" | grep -oE 'env steps: [0-9]+, episodes: [0-9]+, wall time: [0-9.]+' \
        | awk '{gsub(",", ""); print $3 / $8}' >>"$out/throughput"
done
# The same with the dashboard serving and a page open on the run (its JSON polled every 2 s, as
# the page does, by one curl), each paired with a run without it on the same seed just before:
# the cost is the median over the pairs of 1 - with/without (nine pairs: single ones move by
# several per cent on this machine).
for s in 1 2 3 4 5 6 7 8 9; do
    "$bin" train --seed "$s" --num-env-runners 2 --output-dir "$out/tpn" --stop '{"training_iteration": 60}' \
        --config "$tp_cfg" >"$out/nlog" 2>&1
    "$bin" train --seed "$s" --num-env-runners 2 --output-dir "$out/tpd" --stop '{"training_iteration": 60}' \
        --config "$tp_cfg" --dashboard --dashboard-port 0 >"$out/dlog" 2>&1 &
    pid=$!
    url=""
    for _ in $(seq 200); do
        url=$(grep -oE 'http://127.0.0.1:[0-9]+' "$out/dlog" | head -1 || true)
        [ -n "$url" ] && break
        sleep 0.01
    done
    while kill -0 "$pid" 2>/dev/null; do
        curl -s "$url/api/runs" "$url/api/cluster" "$url/api/actors" >/dev/null 2>&1 || true
        sleep 2
    done
    wait "$pid"
    rate() { grep -oE 'env steps: [0-9]+, episodes: [0-9]+, wall time: [0-9.]+' "$1" | awk '{gsub(",", ""); print $3 / $8}'; }
    paste -d' ' <(rate "$out/dlog") <(rate "$out/nlog") | awk '{printf "%.2f\n", 100 * (1 - $1 / $2)}' >>"$out/dash_cost"
done
sampling=$(cargo bench -q -p rllib --bench sampling 2>/dev/null)

col() { awk -v c="$2" '{print $c}' "$out/$1" | median; }
printf '%-58s %14s %14s\n' "measure (median of 5)" "value" "target"
printf '%-58s %14s %14s\n' "example cartpole-ppo to return 150: wall s" "$(col to150 1)" "<= 0.5"
printf '%-58s %14s %14s\n' "  env steps used" "$(col to150 3)" ""
printf '%-58s %14s %14s\n' "  peak RSS, MB" "$(col to150 2 | awk '{printf "%.1f", $1 / 1024}')" "<= 30"
printf '%-58s %14s %14s\n' "same to return 475: wall s" "$(col to475 1)" "<= 2"
printf '%-58s %14s %14s\n' "  env steps used" "$(col to475 3)" ""
printf '%-58s %14s %14s\n' "start-up + one 32-step iteration + checkpoint, wall s" "$(col startup 1)" "<= 0.05"
printf '%-58s %14s %14s\n' "training throughput, 64x64 tanh, 2x32 envs, env steps/s" "$(median <"$out/throughput" | awk '{printf "%.0f", $1}')" ">= 200000"
printf '%-58s %14s %14s\n' "  cost of the dashboard with a page open, % (9 pairs)" "$(median <"$out/dash_cost")" "< 2"
printf '%-58s %14s %14s\n' "sampling, 2 runners x 32 envs, env steps/s" "$(echo "$sampling" | awk '/2 runner actors/ {print $NF}')" ">= 2000000"
printf '%-58s %14s %14s\n' "sampling speed-up from 1 to 2 runners" "$(echo "$sampling" | awk '/speed-up/ {print $NF}')" ">= 1.8"
