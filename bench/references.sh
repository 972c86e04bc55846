#!/usr/bin/env bash
# Reference wall times: Stable-Baselines3 (run through rl-baselines3-zoo with the zoo's published
# hyperparameters) and CleanRL (its published script defaults) on the six tasks of our README.
#
# For each task, library and seed it records the wall time and env steps until the mean return of
# the last 100 *training* episodes first reaches the task's stop return (or that it did not within
# the budget), one JSON line per run, and prints a Markdown summary (medians over seeds).
# What exactly is measured, and how each library is driven, is described in
# bench/references/README.md and in the headers of bench/references/*.py.
#
# Usage: bench/references.sh [--seeds N] [--tasks a,b] [--libs sb3,cleanrl] [--smoke]
#                            [--out DIR] [--horizon published|budget] [--timeout S]
#   --seeds N      seeds 1..N (default 5)
#   --tasks a,b    subset of: cartpole-dqn acrobot-ppo mountaincar-dqn pendulum-ppo pendulum-sac
#                  mountaincarcontinuous-sac (default: all six)
#   --libs a,b     sb3 and/or cleanrl (default both)
#   --smoke        plumbing check: tiny budget (3000 env steps), stop return -inf over a window of
#                  2 episodes, one seed unless --seeds is given
#   --out DIR      where results.jsonl and the per-run logs go (default: a new temp dir, kept)
#   --horizon H    published (default): each library trains for its own published length
#                  (zoo n_timesteps / CleanRL --total-timesteps default), capped at the budget;
#                  budget: both libraries are told to train for exactly the budget (this changes
#                  schedules that depend on the training length, e.g. DQN's epsilon decay)
#   --timeout S    kill a single run after S seconds (default 7200)
#   --setup-only   create the venvs (if missing), print the versions and stop
#
# Environment: REF_VENV   root of the throwaway environments (default
#                         ${XDG_CACHE_HOME:-$HOME/.cache}/rllib-bench/venv); it holds
#                         torch/ (one shared torch install, put on each venv's path by a .pth file),
#                         sb3/, cleanrl-gymnasium/ and cleanrl-gym/ (see below). Created when missing.
#              REF_PYTHON the interpreter the venvs are made from (default python3; 3.10 or 3.11).
#
# Runs are sequential (one at a time) and single-threaded (OMP_NUM_THREADS=1 and
# torch.set_num_threads(1) in every run), so two cores are plenty. CPU only: torch comes from PyPI
# (its CUDA libraries are installed but unused; no GPU is looked for: --device cpu / --cuda False).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
refdir="$here/references"

seeds=""; tasks=""; libs="sb3,cleanrl"; smoke=0; setup_only=0; out=""; horizon="published"; timeout_s=7200
while [ $# -gt 0 ]; do
    case "$1" in
        --seeds) seeds=$2; shift 2 ;;
        --tasks) tasks=$2; shift 2 ;;
        --libs) libs=$2; shift 2 ;;
        --smoke) smoke=1; shift ;;
        --out) out=$2; shift 2 ;;
        --horizon) horizon=$2; shift 2 ;;
        --timeout) timeout_s=$2; shift 2 ;;
        --setup-only) setup_only=1; shift ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
    esac
done

REF_VENV=${REF_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/rllib-bench/venv}
REF_PYTHON=${REF_PYTHON:-python3}
case "$REF_VENV" in
    "$(cd "$here/.." && pwd)"/*) echo "REF_VENV must be outside the repository" >&2; exit 2 ;;
esac

# ---- pinned versions ---------------------------------------------------------------------------
# One torch for all three venvs, so that torch's own speed is the same for both libraries.
TORCH_PIN="torch==2.14.1"
# SB3 + the zoo, on a current gymnasium (the zoo needs shimmy 2, hence gymnasium >= 1.0).
SB3_PINS=(stable-baselines3==2.9.2 sb3-contrib==2.9.2 rl-zoo3==2.9.2 gymnasium==1.4.0 numpy==2.4.6)
# CleanRL 1.2.0 (its newest PyPI release) is a snapshot taken half-way through its migration from
# gym to gymnasium, and its own metadata cannot be satisfied (it pins stable-baselines3==1.2.0,
# while dqn.py refuses to run on SB3 < 2.0), so it is installed with --no-deps into two venvs:
#  - cleanrl-gymnasium: for dqn.py and ppo_continuous_action.py, which `import gymnasium` and use
#    the 0.28/0.29 vector API ("final_info"); gymnasium 0.29.1 is the version of CleanRL's lock
#    file, numpy < 2 because gymnasium 0.29.1 still uses np.bool8; dqn.py needs SB3 >= 2.0 for its
#    ReplayBuffer (the same SB3 as the sb3 venv).
#  - cleanrl-gym: for ppo.py and sac_continuous_action.py, which still `import gym` (gym 0.23.1 is
#    CleanRL's pin; 4-tuple step API) and, for SAC, SB3 1.2.0's ReplayBuffer (CleanRL's pin; SB3 2.x
#    rejects gym's spaces).
# Its Requires-Python (< 3.11) comes from the poetry lock of its optional extras (jax, envpool);
# the four scripts used here need only argparse/distutils (still in 3.11), so it is installed with
# --ignore-requires-python.
CLEANRL_PIN="cleanrl==1.2.0"
CLEANRL_GYMNASIUM_PINS=(gymnasium==0.29.1 numpy==1.24.4 stable-baselines3==2.9.2 tensorboard==2.20.0)
# gym 0.23.1's classic_control imports pygame at import time; CleanRL pins pygame==2.1.0, which has
# no wheel for Python 3.11, so the oldest release with one is used (it is only used for rendering).
CLEANRL_GYM_PINS=(gym==0.23.1 numpy==1.24.4 stable-baselines3==1.2.0 pygame==2.1.3 pandas==2.2.3
    matplotlib==3.9.4 tensorboard==2.20.0)

log() { echo "[references] $*" >&2; }

purelib() { "$1/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])'; }

# make_venv DIR NODEPS_PKG PINS...: (re)create DIR unless its marker records exactly these pins,
# put the shared torch on its path, pip-install the pinned packages, then NODEPS_PKG (if not "-")
# with --no-deps --ignore-requires-python.
make_venv() {
    local dir=$1 nodeps=$2; shift 2
    local want="$* $nodeps"
    [ -f "$dir/.refbench-complete" ] && [ "$(cat "$dir/.refbench-complete")" = "$want" ] && return 0
    log "creating $dir ($want)"
    rm -rf "$dir"
    "$REF_PYTHON" -m venv "$dir"
    "$dir/bin/python" -m pip install -q --upgrade pip
    echo "$REF_VENV/torch" >"$(purelib "$dir")/refbench-torch.pth"
    "$dir/bin/python" -m pip install -q "$@"
    if [ "$nodeps" != "-" ]; then
        "$dir/bin/python" -m pip install -q --no-deps --ignore-requires-python "$nodeps"
    fi
    echo "$want" >"$dir/.refbench-complete"
}

setup_venvs() {
    mkdir -p "$REF_VENV"
    if [ ! -f "$REF_VENV/torch/.refbench-complete" ] || [ "$(cat "$REF_VENV/torch/.refbench-complete")" != "$TORCH_PIN" ]; then
        log "installing $TORCH_PIN (shared, ~5 GB with its CUDA libraries) into $REF_VENV/torch"
        rm -rf "$REF_VENV/torch" "$REF_VENV/.pip-tmp"
        "$REF_PYTHON" -m venv "$REF_VENV/.pip-tmp"
        "$REF_VENV/.pip-tmp/bin/python" -m pip install -q --upgrade pip
        "$REF_VENV/.pip-tmp/bin/python" -m pip install -q --target "$REF_VENV/torch" "$TORCH_PIN"
        rm -rf "$REF_VENV/.pip-tmp"
        echo "$TORCH_PIN" >"$REF_VENV/torch/.refbench-complete"
    fi
    make_venv "$REF_VENV/sb3" - "${SB3_PINS[@]}"
    make_venv "$REF_VENV/cleanrl-gymnasium" "$CLEANRL_PIN" "${CLEANRL_GYMNASIUM_PINS[@]}"
    make_venv "$REF_VENV/cleanrl-gym" "$CLEANRL_PIN" "${CLEANRL_GYM_PINS[@]}"
}

print_versions() {
    echo "## Versions"
    echo
    echo "| venv | python | torch | stable-baselines3 | rl-zoo3 | sb3-contrib | cleanrl | gymnasium | gym | numpy |"
    echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
    local v
    for v in sb3 cleanrl-gymnasium cleanrl-gym; do
        "$REF_VENV/$v/bin/python" - "$v" <<'EOF'
import sys, platform
from importlib.metadata import version, PackageNotFoundError
def ver(name):
    try:
        return version(name)
    except PackageNotFoundError:
        return "-"
names = ["torch", "stable-baselines3", "rl-zoo3", "sb3-contrib", "cleanrl", "gymnasium", "gym", "numpy"]
print("| " + " | ".join([sys.argv[1], platform.python_version()] + [ver(n) for n in names]) + " |")
EOF
    done
    echo
}

setup_venvs
log "environments ready under $REF_VENV (full pins: $REF_VENV/*/bin/python -m pip freeze)"
if [ "$setup_only" = 1 ]; then print_versions; exit 0; fi

if [ -z "$out" ]; then out=$(mktemp -d "${TMPDIR:-/tmp}/refbench.XXXXXX"); fi
mkdir -p "$out"
args=(--venv-root "$REF_VENV" --out "$out" --libs "$libs" --horizon "$horizon" --timeout "$timeout_s")
[ -n "$seeds" ] && args+=(--seeds "$seeds")
[ -n "$tasks" ] && args+=(--tasks "$tasks")
[ "$smoke" = 1 ] && args+=(--smoke)

export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
# The orchestrator only needs the standard library.
"$REF_VENV/sb3/bin/python" "$refdir/run_all.py" "${args[@]}"
echo
print_versions
echo "results: $out/results.jsonl (logs: $out/logs/)"
