#!/usr/bin/env bash
# Long-run memory: trains PPO on CartPole-v1 for 2M env steps (the cartpole-ppo example with
# 2 env runners) and samples the process's resident memory every 0.25 s.
# Prints RSS after warm-up (10 % of the run), at 50 %, 90 % and at the end, and the growth
# from warm-up to the end. Usage: bench/memory.sh [env_steps]   (needs Linux /proc)
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-2000000}
cargo build --release -q -p rllib
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
./target/release/rllib example run cartpole-ppo --seed 1 --num-env-runners 2 \
    --output-dir "$out" --stop "{\"num_env_steps_sampled_lifetime\": $steps}" >"$out/log" 2>&1 &
pid=$!
: >"$out/rss"
while kill -0 "$pid" 2>/dev/null; do
    rss=$(awk '/^VmRSS/ {print $2}' /proc/$pid/status 2>/dev/null || true)
    steps_now=$(awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == "num_env_steps_sampled_lifetime") c = i }
        END { if (c && NR > 1) print $c }' "$out"/cartpole-ppo/*/progress.csv 2>/dev/null || true)
    [ -n "$rss" ] && echo "$rss ${steps_now:-0}" >>"$out/rss"
    sleep 0.25
done
wait "$pid"
awk -v total="$steps" '
    { rss[NR] = $1; st[NR] = $2 }
    END {
        n = NR
        for (i = 1; i <= n; i++) {
            if (!w && st[i] >= 0.1 * total) w = i
            if (!h && st[i] >= 0.5 * total) h = i
            if (!l && st[i] >= 0.9 * total) l = i
        }
        printf "%-34s %10s\n", "point of the run", "RSS (KB)"
        printf "%-34s %10d\n", "after warm-up (10% of steps)", rss[w]
        printf "%-34s %10d\n", "half way (50%)", rss[h]
        printf "%-34s %10d\n", "90%", rss[l]
        printf "%-34s %10d\n", "last sample", rss[n]
        max = 0; for (i = w; i <= n; i++) if (rss[i] > max) max = rss[i]
        printf "%-34s %10d\n", "peak after warm-up", max
        printf "growth from warm-up to the end: %.2f %%\n", 100 * (rss[n] - rss[w]) / rss[w]
    }' "$out/rss"
grep -E "Stopped|Iterations" "$out/log"
