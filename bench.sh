#!/usr/bin/env bash
# Every figure of BENCHMARKS.md with one command: the criterion benches of every crate
# (each ends with its ratio lines against a baseline measured in the same process), then
# the whole-tree tar streaming script (ratios against GNU tar on the same input).
# The full output goes to target/bench-all.log; the ratio lines are repeated at the end.
#
# usage: ./bench.sh [TREE_RUNS]       (default 5; about half an hour on 2 cores)
# Needs: buildlet-proto/benches/prepare-tree.sh (makes the tar corpus on a tmpfs; root
# for apt-get the first time), curl and python3 for the tree script.
set -euo pipefail
cd "$(dirname "$0")"
mkdir -p target
log=target/bench-all.log
: >"$log"
# The tar corpus first, so the in-process tgz bench measures the same input as tree.sh.
bench_dir=${BENCH_DIR:-/tmp/xbuild-bench}
echo "==> preparing the tar corpus in $bench_dir"
bash buildlet-proto/benches/prepare-tree.sh "$bench_dir"
export BENCH_TREE="$bench_dir/tree"
echo "==> cargo bench --workspace (criterion; ratio lines at the end of each bench)"
cargo bench --workspace 2>&1 | tee -a "$log"
echo "==> buildlet-proto/benches/tree.sh ${1:-5} (whole-tree tar streaming against GNU tar)"
echo "== whole-tree tar streaming ==" >>"$log"
buildlet-proto/benches/tree.sh "${1:-5}" | tee -a "$log"
echo
echo "==================== summary (full output: $log) ===================="
# Each bench prints its figures as a block that starts with a heading and ends at a blank
# line; the tree script's figures are its last lines.
awk '/^== |^perfstore figures/ {on=1} on && /^$/ {on=0; print ""} on && !/^ +Running / {print}' "$log"
