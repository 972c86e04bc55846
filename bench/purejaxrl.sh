#!/usr/bin/env bash
# PureJaxRL's PPO on CartPole-v1 on this machine's CPU, for comparison with
# bench/small_batches.sh (the same PPO settings on our framework): PureJaxRL's own make_train
# (purejaxrl/ppo.py, imported from a checkout, not copied) with that file's CartPole-v1 config:
# 4 envs x 128 steps (512-step batches), 4 epochs of 128-row minibatches, 64x64 tanh separate
# actor and critic, lr 2.5e-4 annealed to 0, gamma 0.99, GAE lambda 0.95, clip 0.2, entropy
# 0.01, value coefficient 0.5, gradient norm 0.5, 500,000 env steps (976 iterations = 499,712).
# The whole training loop, envs (gymnax) included, is one jitted XLA program, run on the CPU
# (JAX_PLATFORMS=cpu; XLA uses all cores). Per seed, bench/references/purejaxrl_run.py times
# the first call (tracing + XLA compilation + the run) and a second call of the compiled
# function, and finds the env step at which the mean return of the last 100 finished episodes
# first reaches 475. Prints a Markdown table: median and min-max over the seeds of the
# compiled run's seconds, the first call's seconds, the imports' seconds (jax, gymnax, ppo.py),
# and env steps to 475 (over the seeds that reached it; k/N says how many did).
# small_batches.sh's "wall s, process start to exit" compares with import s + compile+run s
# (plus interpreter start-up, well under a second); compiled run s is JAX's steady state.
#
# Usage: bench/purejaxrl.sh [--install DIR | --venv DIR] --purejaxrl DIR [--seeds "1 2 3 4 5"]
#                           [--total-timesteps N]
#   --install DIR   create the venv at DIR (outside the repository) and pip-install the pinned
#                   versions below into it (skipped when DIR already holds exactly these pins),
#                   then run with it
#   --venv DIR      run with an existing venv (default /tmp/pjx)
#   --purejaxrl DIR a checkout of github.com/luchris429/purejaxrl, commit
#                   31756b197773a52db763fdbe6d635e4b46522a73 (the newest, 2024-09-09) measured
#                   with these pins; an exported tree without .git may hold the commit in a file
#                   DIR/COMMIT, which is reported
#   --seeds "..."   PRNG seeds (default "1 2 3 4 5")
#   --total-timesteps N   PureJaxRL's TOTAL_TIMESTEPS (default 500000; also sets the lr annealing)
#
# Runs are sequential; the machine should otherwise be idle (these are wall times).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/.." && pwd)"

venv=/tmp/pjx; install=0; pjx=""; seeds="1 2 3 4 5"; total=500000
while [ $# -gt 0 ]; do
    case "$1" in
        --install) venv=$2; install=1; shift 2 ;;
        --venv) venv=$2; shift 2 ;;
        --purejaxrl) pjx=$2; shift 2 ;;
        --seeds) seeds=$2; shift 2 ;;
        --total-timesteps) total=$2; shift 2 ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
    esac
done
[ -n "$pjx" ] || { echo "--purejaxrl DIR is required (see --help)" >&2; exit 2; }
[ -f "$pjx/purejaxrl/ppo.py" ] || { echo "no purejaxrl/ppo.py under $pjx" >&2; exit 2; }
venv=$(realpath -m "$venv")
case "$venv" in
    "$repo"|"$repo"/*) echo "the venv must be outside the repository" >&2; exit 2 ;;
esac

# ---- pinned versions ---------------------------------------------------------------------------
# The newest releases that run PureJaxRL's ppo.py unchanged, except gymnax: gymnax 1.0 returns
# (obs, state, reward, terminated, truncated, info) from step, and PureJaxRL's wrappers.py unpacks
# five values, so gymnax stays at 0.0.9. distrax 0.1.9 depends on tfp-nightly (no stable
# tensorflow-probability release supports it), pinned here to the build that was current.
# brax and navix, which wrappers.py imports for other envs, are not installed: purejaxrl_run.py
# puts empty stand-ins in their place.
PINS=("jax[cpu]==0.10.2" jaxlib==0.10.2 flax==0.12.8 optax==0.2.8 distrax==0.1.9
    tfp-nightly==0.26.0.dev20261027 chex==0.1.92 gymnax==0.0.9 numpy==2.4.6)

log() { echo "[purejaxrl] $*" >&2; }

if [ "$install" = 1 ]; then
    if [ -f "$venv/.refbench-complete" ] && [ "$(cat "$venv/.refbench-complete")" = "${PINS[*]}" ]; then
        log "$venv already holds the pinned versions"
    else
        log "creating $venv (${PINS[*]})"
        rm -rf "$venv"
        python3 -m venv "$venv"
        "$venv/bin/python" -m pip install -q --upgrade pip
        "$venv/bin/python" -m pip install -q "${PINS[@]}"
        echo "${PINS[*]}" >"$venv/.refbench-complete"
    fi
fi
py=$venv/bin/python
[ -x "$py" ] || { echo "no venv at $venv: pass --install DIR to create one" >&2; exit 2; }

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
export JAX_PLATFORMS=cpu
for s in $seeds; do
    "$py" "$here/references/purejaxrl_run.py" --purejaxrl "$pjx" --seed "$s" \
        --total-timesteps "$total" >"$out/run.json"
    cat "$out/run.json" >>"$out/runs.jsonl"
    "$py" - "$out/run.json" >&2 <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print(f"  seed {r['seed']}: compiled run {r['compiled_run_s']} s, compile+run "
      f"{r['compile_and_run_s']} s, import {r['import_s']} s, env steps to 475: {r['steps_to_475']}")
PY
done

"$py" - "$out/runs.jsonl" <<'PY'
import json, sys
runs = [json.loads(l) for l in open(sys.argv[1])]
def med(v):
    v = sorted(v)
    return v[(len(v) - 1) // 2]  # the lower median, as bench/small_batches.sh takes it
def row(name, v):
    if not v:
        return f"| {name} | never | - |"
    return f"| {name} | {med(v):g} | {min(v):g}-{max(v):g} |"
n, steps = len(runs), [r["steps_to_475"] for r in runs if r["steps_to_475"] != "never"]
env_steps = runs[0]["env_steps_run"]
print(f"| measure ({n} seeds) | median | min-max |\n| --- | --- | --- |")
print(row(f"compiled run s ({env_steps:,} env steps, second call)", [r["compiled_run_s"] for r in runs]))
print(row("compile+run s (first call, XLA compilation included)", [r["compile_and_run_s"] for r in runs]))
print(row("import s (jax, gymnax, ppo.py)", [r["import_s"] for r in runs]))
print(row(f"env steps to a 100-episode mean of 475 (reached {len(steps)}/{n})", steps))
v = runs[0]["versions"]
print()
print("PureJaxRL " + runs[0]["purejaxrl_commit"] + "; " + ", ".join(f"{k} {x}" for k, x in v.items()))
PY
