#!/usr/bin/env bash
# Tune's figures (issue 12): one trial of cartpole-ppo against four (`--num-samples 4`) on this
# machine's CPUs, the same work per trial (a fixed number of iterations), medians of 3 runs;
# then Tune's own overhead (`cargo bench -p tune --bench trials`: the tutorial's grid with no
# sleep, 10,000 trivial trials, the grid with sleeps against the ideal waves).
# Usage: bench/tune.sh [iterations, default 20]
set -euo pipefail
cd "$(dirname "$0")/.."
iters=${1:-20}
cargo build --release -q -p rllib
bin=./target/release/rllib
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
median() { sort -g | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }
wall() { # wall seconds of one command
    local t0 t1
    t0=$(date +%s.%N)
    "$@" >"$out/log" 2>&1 || { cat "$out/log"; exit 1; }
    t1=$(date +%s.%N)
    echo "$t1 - $t0" | bc -l
}
stop="{\"training_iteration\": $iters}"
for s in 1 2 3; do
    wall "$bin" example run cartpole-ppo --seed "$s" --stop "$stop" --output-dir "$out/one" >>"$out/one.txt"
    wall "$bin" example run cartpole-ppo --seed "$s" --stop "$stop" --num-samples 4 --output-dir "$out/four" >>"$out/four.txt"
done
one=$(median <"$out/one.txt")
four=$(median <"$out/four.txt")
printf '%-60s %10s %10s\n' "measure (median of 3, $(nproc) CPUs)" "value" "goal"
printf '%-60s %10.2f %10s\n' "one trial of cartpole-ppo, $iters iterations: wall s" "$one" ""
printf '%-60s %10.2f %10s\n' "four trials (--num-samples 4): wall s" "$four" ""
printf '%-60s %10.2f %10s\n' "four / one" "$(echo "$four / $one" | bc -l)" "<= 2.2"
cargo bench -q -p tune --bench trials 2>/dev/null
