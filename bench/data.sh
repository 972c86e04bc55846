#!/usr/bin/env bash
# Data's figures (issue 13): the tutorial's program from process start to exit (median of 9
# runs) with its peak RSS, and rows/s through map -> filter -> flat_map of typed rows; then
# Parquet write and read of one ~1 GB file against the `parquet` crate alone in the same run
# (ours/raw >= 0.50; about a minute and ~2 GB on /tmp; DATA_BENCH_PARQUET_MB sets the size).
# Usage: bench/data.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p data --example data_pipeline
bin=./target/release/examples/data_pipeline
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
median() { sort -g | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }
for _ in 1 2 3 4 5 6 7 8 9; do
    t0=$(date +%s%N)
    "$bin" >"$out/log"
    t1=$(date +%s%N)
    echo "($t1 - $t0) / 1000000" | bc -l >>"$out/ms"
    /usr/bin/time -f "%M" -o "$out/rss" "$bin" >/dev/null
    cat "$out/rss" >>"$out/kb"
done
grep -q '^\[0, 0, 4, 64, 16, 4096, 36, 46656, 64, 262144\]$' "$out/log" || { cat "$out/log"; exit 1; }
printf '%-58s %10s %10s\n' "measure" "value" "goal"
printf '%-58s %10.1f %10s\n' "the tutorial's program, process start to exit: ms" "$(median <"$out/ms")" "<= 20"
printf '%-58s %10.1f %10s\n' "  its peak RSS: MB" "$(echo "$(median <"$out/kb") / 1024" | bc -l)" ""
cargo bench -q -p data --bench pipeline 2>/dev/null
echo
cargo bench -q -p data --bench parquet 2>/dev/null
