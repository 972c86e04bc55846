#!/usr/bin/env bash
# Serve's figures (issue 14): `rllib serve` on a cartpole-ppo checkpoint under wrk on loopback
# (POST / with one observation): requests/s at 64 connections, latency percentiles, errors,
# and peak resident memory; then p99 at half that rate (64 connections, each pausing between
# requests); then, with --ray PYTHON (a Python with ray[serve]==2.60.0 and torch; --install-ray
# DIR makes one in a throwaway venv), Ray Serve serving a torch 4-64-64-2 policy the same way,
# in the same run. Loopback only; every load runs DURATION seconds (default 10).
# Usage: bench/serve.sh [--ray PYTHON | --install-ray DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${DURATION:-10}
ray_python=""
case "${1:-}" in
--ray) ray_python=$2 ;;
--install-ray)
    python3 -m venv "$2"
    "$2/bin/pip" install -q "ray[serve]==2.60.0" torch
    ray_python="$2/bin/python"
    ;;
"") ;;
*) echo "usage: bench/serve.sh [--ray PYTHON | --install-ray DIR]" >&2; exit 2 ;;
esac
command -v wrk >/dev/null || { echo "bench/serve.sh needs wrk (apt-get install wrk)" >&2; exit 1; }
cargo build --release -q -p rllib
bin=./target/release/rllib
out=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$out"; }
trap cleanup EXIT

"$bin" example run cartpole-ppo --seed 1 --output-dir "$out/runs" --stop '{"training_iteration": 10}' >"$out/train.log"
ck=$(sed -n 's/^Checkpoint: //p' "$out/train.log")

cat >"$out/post.lua" <<'LUA'
wrk.method = "POST"
wrk.body = '{"observation": [0.01, -0.02, 0.03, 0.04]}'
wrk.headers["Content-Type"] = "application/json"
local pause = tonumber(os.getenv("PAUSE_MS") or "0")
function delay() return pause end
done = function(summary, latency, requests)
    local errors = summary.errors.connect + summary.errors.read + summary.errors.write
        + summary.errors.status + summary.errors.timeout
    io.write(string.format("RESULT %.1f %.3f %.3f %.3f %d\n", summary.requests / (summary.duration / 1e6),
        latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000, errors))
end
LUA

# The same report for a plain GET (the server's /-/healthz: the HTTP stack's own ceiling).
sed -e '/^wrk\./d' "$out/post.lua" >"$out/get.lua"

# load URL CONNECTIONS PAUSE_MS [SCRIPT] -> "req/s p50_ms p99_ms max_ms errors"
load() {
    PAUSE_MS=$3 wrk -t2 -c"$2" -d"${duration}s" --timeout 2s -s "$out/${4:-post}.lua" "$1" 2>/dev/null |
        sed -n 's/^RESULT //p'
}
row() { printf '%-44s %12s %9s %9s %9s %7s\n' "$@"; }

"$bin" serve "$ck" --port 0 >"$out/serve.log" 2>&1 &
pids+=($!)
serve_pid=$!
for _ in $(seq 100); do grep -q "at http://" "$out/serve.log" && break; sleep 0.1; done
url=$(sed -n 's/.*at \(http:\/\/[^ ]*\) .*/\1/p' "$out/serve.log" | head -1)
read -r rps p50 p99 max errs < <(load "$url" 64 0)
rss=$(awk '/VmHWM/ {printf "%.1f", $2 / 1024}' "/proc/$serve_pid/status")
# Half the rate: each of 64 connections pauses so that together they ask for rps / 2.
pause=$(echo "scale=0; (2 * 64 * 1000 / $rps + 0.5) / 1" | bc)
read -r hrps hp50 hp99 hmax herrs < <(load "$url" 64 "$pause")
read -r crps cp50 cp99 cmax cerrs < <(load "${url%/}/-/healthz" 64 0 get)

echo "rllib serve (cartpole-ppo checkpoint, 1 replica, batching; $(nproc) CPUs, wrk -t2, ${duration} s each)"
row "load" "requests/s" "p50 ms" "p99 ms" "max ms" "errors"
row "64 connections" "$rps" "$p50" "$p99" "$max" "$errs"
row "64 connections, ${pause} ms pause each" "$hrps" "$hp50" "$hp99" "$hmax" "$herrs"
row "GET /-/healthz, 64 connections (ceiling)" "$crps" "$cp50" "$cp99" "$cmax" "$cerrs"
printf 'POST / as a share of that ceiling: %.0f %%\n' "$(echo "100 * $rps / $crps" | bc -l)"
echo "peak resident memory of rllib serve under load: ${rss} MB"

if [ -n "$ray_python" ]; then
    port=$((20000 + RANDOM % 10000))
    "$ray_python" bench/serve_ray.py "$port" >"$out/ray.log" 2>&1 &
    pids+=($!)
    for _ in $(seq 600); do grep -q READY "$out/ray.log" && break; sleep 0.2; done
    grep -q READY "$out/ray.log" || { cat "$out/ray.log"; exit 1; }
    read -r r8 r8p50 r8p99 r8max r8errs < <(load "http://127.0.0.1:$port/" 8 0)
    read -r r64 r64p50 r64p99 r64max r64errs < <(load "http://127.0.0.1:$port/" 64 0)
    echo
    echo "Ray Serve 2.60 (torch 4-64-64-2 policy, 1 replica), same run"
    row "load" "requests/s" "p50 ms" "p99 ms" "max ms" "errors"
    row "8 connections" "$r8" "$r8p50" "$r8p99" "$r8max" "$r8errs"
    row "64 connections" "$r64" "$r64p50" "$r64p99" "$r64max" "$r64errs"
    echo
    printf 'rllib serve / Ray Serve at 64 connections: %.0fx\n' "$(echo "$rps / $r64" | bc -l)"
    "$ray_python" -c "import ray; ray.init(address='auto'); ray.shutdown()" >/dev/null 2>&1 || true
    "$(dirname "$ray_python")/ray" stop --force >/dev/null 2>&1 || true
fi
