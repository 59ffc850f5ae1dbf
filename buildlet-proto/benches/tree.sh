#!/usr/bin/env bash
# Whole-tree tar streaming figures for BENCHMARKS.md, each a ratio against GNU tar on the
# same input in the same run:
#   1. PUT /writetgz (the buildlet extracts) against `tar xzf` of the same archive;
#   2. GET /tgz (the buildlet packs, curl receives) against `tar czf` (gzip -6, one core),
#      and the compressed sizes;
#   3. the buildlet's peak RSS (VmHWM) while streaming a ~1 GiB tree in each direction.
# Input: the corpus (the Go standard library source, ~8k files, ~100 MB), prepared on a
# tmpfs by prepare-tree.sh beside this script, so timings measure code, not disks.
#
# usage: buildlet-proto/benches/tree.sh [RUNS]     (default 5; best of RUNS is reported)
set -euo pipefail
runs=${1:-5}
repo=$(cd "$(dirname "$0")/../.." && pwd)
bench=${BENCH_DIR:-/tmp/xbuild-bench}
prepare="$repo/buildlet-proto/benches/prepare-tree.sh"
bash "$prepare" "$bench" >&2
tree="$bench/tree" archive="$bench/tree.tar.gz"
(cd "$repo" && cargo build -q --release -p buildlet-proto --bin buildlet)
bin="$repo/target/release/buildlet"
w="$bench/w"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
url="http://127.0.0.1:$port"
pid=""
start_buildlet() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
  RUST_LOG=warn "$bin" --listen "127.0.0.1:$port" --workdir "$w" 2>/dev/null &
  pid=$!
  for _ in $(seq 100); do curl -sf "$url/healthz" >/dev/null && return; sleep 0.05; done
  echo "buildlet did not start" >&2; exit 1
}
trap '[ -n "$pid" ] && kill $pid 2>/dev/null; rm -rf "$w" "$bench/x" "$bench"/out*.tgz "$bench/big"*' EXIT
now() { date +%s.%N; }
secs() { python3 -c "print(f'{$2 - $1:.4f}')"; }
best() { sort -g | head -1; }
ratio() { python3 -c "print(f'{$1 / $2:.2f}')"; }
rss_kib() { awk '/VmHWM/ {print $2}' "/proc/$pid/status"; }

start_buildlet
echo "corpus: $(find "$tree" -type f | wc -l) files, $(du -sb "$tree" | cut -f1) bytes; archive $(stat -c %s "$archive") bytes; $runs runs each, best kept"

# 1. Extraction.
t_tar=$(for _ in $(seq "$runs"); do rm -rf "$bench/x"; mkdir "$bench/x"; s=$(now); tar -C "$bench/x" -xzf "$archive"; e=$(now); secs "$s" "$e"; done | best)
t_put=$(for _ in $(seq "$runs"); do curl -sf -d path=x "$url/removeall" >/dev/null; s=$(now); curl -sf -T "$archive" "$url/writetgz?dir=x" >/dev/null; e=$(now); secs "$s" "$e"; done | best)
diff -r "$bench/x" "$w/x" >/dev/null || { echo "extracted trees differ" >&2; exit 1; }
echo "writetgz: buildlet ${t_put}s, tar xzf ${t_tar}s, ratio $(ratio "$t_tar" "$t_put")x (goal >= 1.2x)"
rm -rf "$bench/x"; curl -sf -d path=x "$url/removeall" >/dev/null

# 2. Packing.
cp -a "$tree" "$w/src"
t_czf=$(for _ in $(seq "$runs"); do s=$(now); tar -C "$tree" -czf "$bench/out_tar.tgz" .; e=$(now); secs "$s" "$e"; done | best)
t_tgz=$(for _ in $(seq "$runs"); do s=$(now); curl -sf "$url/tgz?dir=src" -o "$bench/out_buildlet.tgz"; e=$(now); secs "$s" "$e"; done | best)
sz_tar=$(stat -c %s "$bench/out_tar.tgz"); sz_b=$(stat -c %s "$bench/out_buildlet.tgz")
n_tar=$(tar -tzf "$bench/out_tar.tgz" | wc -l); n_b=$(tar -tzf "$bench/out_buildlet.tgz" | wc -l)
echo "tgz: buildlet ${t_tgz}s, tar czf ${t_czf}s, ratio $(ratio "$t_czf" "$t_tgz")x (goal >= 2.0x); size $sz_b vs $sz_tar bytes = $(ratio "$sz_b" "$sz_tar")x (goal <= 1.05x); entries $n_b vs $n_tar (tar adds ./)"
rm -rf "$w/src" "$bench"/out*.tgz

# 3. Peak RSS on a ~1 GiB tree, one direction per fresh process.
mkdir -p "$w/big"
for i in $(seq 11); do cp -a "$tree" "$w/big/copy$i"; done
big=$(du -sb "$w/big" | cut -f1)
start_buildlet
curl -sf "$url/tgz?dir=big" -o "$bench/big.tgz"
rss_out=$(rss_kib)
rm -rf "$w/big"
start_buildlet
curl -sf -T "$bench/big.tgz" "$url/writetgz?dir=big2" >/dev/null
rss_in=$(rss_kib)
echo "peak RSS, ${big}-byte tree: /tgz $((rss_out / 1024)) MiB, /writetgz $((rss_in / 1024)) MiB (goal < 64 MiB)"
