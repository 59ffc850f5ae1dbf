#!/usr/bin/env bash
# Builds every fuzz target and runs each for SECONDS on a scratch copy of its committed
# seed corpus, then prints execs/s, corpus growth and any crash per target.
#
# usage: fuzz/run-all.sh SECONDS [TARGET...]      (needs: cargo install cargo-fuzz)
# Crashes land in fuzz/artifacts/<target>/; copy each into fuzz/corpus/<target>/ as a
# regression seed once fixed (the seed replay tests then cover it in CI).
set -uo pipefail
secs=${1:?usage: run-all.sh SECONDS [TARGET...]}
shift
cd "$(dirname "$0")"
export RUSTC_BOOTSTRAP=1
targets=("$@")
[ ${#targets[@]} -gt 0 ] || mapfile -t targets < <(cargo fuzz list)
cargo fuzz build -O >/dev/null 2>&1 || { cargo fuzz build -O; exit 1; }
printf '%-18s %10s %8s %8s %s\n' target execs/s seeds corpus crashes
status=0
for t in "${targets[@]}"; do
  work="corpus-work/$t"
  rm -rf "$work"; mkdir -p "$work"; cp -r "corpus/$t/." "$work/" 2>/dev/null || true
  seeds=$(ls "corpus/$t" 2>/dev/null | wc -l)
  log=$(mktemp)
  cargo fuzz run -O "$t" "$work" -- -max_total_time="$secs" -print_final_stats=1 >"$log" 2>&1
  rc=$?
  execs=$(awk '/stat::number_of_executed_units/ {n=$2} /stat::average_exec_per_sec/ {r=$2} END {print r+0}' "$log")
  crashes=$(ls "artifacts/$t" 2>/dev/null | wc -l)
  printf '%-18s %10s %8s %8s %s\n' "$t" "$execs" "$seeds" "$(ls "$work" | wc -l)" "$crashes"
  if [ $rc -ne 0 ]; then status=1; grep -E 'panicked|ERROR|SUMMARY' "$log" | head -5; fi
  rm -f "$log"
done
exit $status
