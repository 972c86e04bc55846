#!/usr/bin/env bash
# Cluster mode on loopback (issue 11's figures): node processes started with `rllib start`,
# remote call round trip, 1 MB and 100 MB objects to and from a node beside a raw TCP copy in
# the same run, env-runner sampling on 2 node processes vs 1. Run on an otherwise idle machine.
# Usage: bench/cluster.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo bench -q -p rllib --bench cluster 2>/dev/null
