"""Orchestrator for bench/references.sh: runs the reference runs one at a time and summarises them.

What it measures: for each (task, library, seed) it starts one driver process (sb3_run.py in the
sb3 venv, cleanrl_run.py in the CleanRL venv whose gym API the script needs), times the whole
process (`process_s`, from just before the process is spawned to its exit, so it includes the
interpreter's start-up, all imports and the driver's exit), and appends the driver's JSON result
plus process_s / rc / log path to <out>/results.jsonl. Then it prints a Markdown table: per task and
library, reached k/n, and the medians over the seeds that reached of wall_to_threshold_s and of the
env steps, and the median process_s over all seeds.

Standard library only; it can run under any Python 3.8+.
"""

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

import common

HERE = os.path.dirname(os.path.abspath(__file__))


def run_one(args, task_name, lib, seed, logs_dir):
    task = common.TASKS[task_name]
    if lib == "sb3":
        venv, driver = "sb3", "sb3_run.py"
    else:
        venv, driver = task["cleanrl"][1], "cleanrl_run.py"
    python = os.path.join(args.venv_root, venv, "bin", "python")
    work = tempfile.mkdtemp(prefix=f"refbench-{task_name}-{lib}-{seed}-")
    result = os.path.join(work, "result.json")
    log = os.path.join(logs_dir, f"{task_name}-{lib}-seed{seed}.log")
    cmd = [python, os.path.join(HERE, driver), "--task", task_name, "--seed", str(seed),
           "--result", result, "--workdir", os.path.join(work, "w"), "--horizon", args.horizon]
    if args.smoke:
        cmd.append("--smoke")
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
               PYTHONUNBUFFERED="1", CUDA_VISIBLE_DEVICES="")
    env.pop("PYTHONPATH", None)
    timed_out = False
    with open(log, "w") as logf:
        logf.write("$ " + " ".join(cmd) + "\n")
        logf.flush()
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, env=env,
                                cwd=work, start_new_session=True)
        try:
            rc = proc.wait(timeout=args.timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            os.killpg(proc.pid, signal.SIGKILL)
            rc = proc.wait()
        process_s = time.perf_counter() - t0
    rec = None
    if os.path.exists(result):
        with open(result) as f:
            rec = json.loads(f.read())
    if rec is None:
        with open(log) as f:
            tail = f.read()[-600:].strip().replace("\n", " | ")
        rec = dict(task=task_name, library=lib, seed=seed, reached=False,
                   end="timeout" if timed_out else f"error: no result (rc {rc}): {tail}",
                   wall_to_threshold_s=None, env_steps=None)
    rec.update(process_s=round(process_s, 3), rc=rc, log=log, smoke=args.smoke)
    shutil.rmtree(work, ignore_errors=True)
    return rec


def fmt(x, nd=1):
    return "—" if x is None else (f"{x:.{nd}f}" if isinstance(x, float) else str(x))


def summary(records, tasks, libs):
    lines = ["| task | library | reached | wall to threshold, s (median) | range, s | env steps (median) "
             "| process s (median, all seeds) | end of unreached runs |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for t in tasks:
        for lib in libs:
            rs = [r for r in records if r["task"] == t and r["library"] == lib]
            if not rs:
                continue
            ok = [r for r in rs if r.get("reached")]
            walls = [r["wall_to_threshold_s"] for r in ok]
            steps = [r["env_steps"] for r in ok]
            procs = [r["process_s"] for r in rs if r.get("process_s") is not None]
            ends = sorted({_short_end(r) for r in rs if not r.get("reached")})
            lines.append("| {} | {} | {}/{} | {} | {} | {} | {} | {} |".format(
                t, lib, len(ok), len(rs),
                fmt(statistics.median(walls)) if walls else "—",
                f"{min(walls):.1f}–{max(walls):.1f}" if walls else "—",
                fmt(int(statistics.median(steps))) if steps else "—",
                fmt(statistics.median(procs)) if procs else "—",
                "; ".join(ends) if ends else ""))
    return "\n".join(lines)


def _short_end(r):
    e = r.get("end", "?")
    if e == "budget":
        return f"budget ({r.get('env_steps')} steps, last-100 mean {fmt(r.get('last_window_mean'))})"
    if e == "library_total":
        return (f"library's own length ended ({r.get('env_steps')} steps, "
                f"last-100 mean {fmt(r.get('last_window_mean'))})")
    return e[:160]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--venv-root", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--seeds", type=int, default=None)
    ap.add_argument("--tasks", default=",".join(common.TASKS))
    ap.add_argument("--libs", default="sb3,cleanrl")
    ap.add_argument("--horizon", choices=["published", "budget"], default="published")
    ap.add_argument("--timeout", type=float, default=7200)
    ap.add_argument("--smoke", action="store_true")
    args = ap.parse_args()

    tasks = [t for t in args.tasks.split(",") if t]
    libs = [lib for lib in args.libs.split(",") if lib]
    for t in tasks:
        if t not in common.TASKS:
            sys.exit(f"unknown task {t!r}; known: {', '.join(common.TASKS)}")
    for lib in libs:
        if lib not in ("sb3", "cleanrl"):
            sys.exit(f"unknown library {lib!r}; known: sb3, cleanrl")
    n_seeds = args.seeds if args.seeds is not None else (1 if args.smoke else 5)
    logs_dir = os.path.join(args.out, "logs")
    os.makedirs(logs_dir, exist_ok=True)
    results_path = os.path.join(args.out, "results.jsonl")

    records = []
    for t in tasks:
        for lib in libs:
            for seed in range(1, n_seeds + 1):
                print(f"[references] {t} {lib} seed {seed} ...", file=sys.stderr, flush=True)
                rec = run_one(args, t, lib, seed, logs_dir)
                records.append(rec)
                with open(results_path, "a") as f:
                    f.write(json.dumps(rec) + "\n")
                print("[references]   -> {} at {} steps, wall {} s, process {} s".format(
                    "REACHED" if rec.get("reached") else _short_end(rec), rec.get("env_steps"),
                    fmt(rec.get("wall_to_threshold_s") or rec.get("wall_to_end_s")),
                    fmt(rec.get("process_s"))), file=sys.stderr, flush=True)

    mode = " (SMOKE: plumbing only — stop return -inf over 2 episodes, 3000-step budget)" if args.smoke else ""
    print(f"## Reference runs{mode}\n")
    print(f"Seeds 1..{n_seeds}; horizon: {args.horizon}; one run at a time, 1 torch thread, CPU.\n")
    print(summary(records, tasks, libs))
    print()


if __name__ == "__main__":
    main()
