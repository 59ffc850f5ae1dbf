#!/usr/bin/env bash
# Reader N against upstream's Go reader (golang.org/x/perf/benchfmt.Reader) on the same
# bytes: the parse corpus of `cargo bench -p perfstore`, timed by this crate's bench and by
# a small Go program that reads it with upstream's reader, in one script.
#
# usage: perfstore/benches/upstream-reader.sh PERF_SRC [MOREMATH_SRC]
#   PERF_SRC      a checkout of golang.org/x/perf (github.com/golang/perf)
#   MOREMATH_SRC  a checkout of github.com/aclements/go-moremath, which upstream's
#                 benchmath needs; without it, Go's module proxy must be reachable.
# Needs: a Go toolchain (Debian's golang-go works). Upstream's sources are copied to a
# temporary directory and built there; nothing of them enters this repository.
set -euo pipefail
perf_src=${1:?usage: $0 PERF_SRC [MOREMATH_SRC]}
moremath_src=${2:-}
cd "$(dirname "$0")/../.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "==> writing the parse corpus"
PERFSTORE_BENCH_WRITE_CORPUS="$work/corpus.txt" cargo bench -q -p perfstore --bench perfstore
ls -l "$work/corpus.txt"

echo "==> building upstream's reader from $perf_src"
mkdir -p "$work/go/cmd/parsebench"
for pkg in benchfmt benchunit benchmath; do
  mkdir -p "$work/go/$pkg"
  find "$perf_src/$pkg" -maxdepth 1 -name '*.go' ! -name '*_test.go' -exec cp {} "$work/go/$pkg/" \;
  [ -d "$perf_src/$pkg/internal" ] && cp -r "$perf_src/$pkg/internal" "$work/go/$pkg/"
done
{
  echo "module golang.org/x/perf"
  echo
  echo "go 1.19"
  echo
  echo "require github.com/aclements/go-moremath v0.0.0-20210112150236-f10218a38794"
  if [ -n "$moremath_src" ]; then
    echo
    echo "replace github.com/aclements/go-moremath => $moremath_src"
  fi
} >"$work/go/go.mod"
# The timing program: upstream's reader over the whole corpus in memory, as the Rust bench
# reads it, 15 rounds, the median reported.
cat >"$work/go/cmd/parsebench/main.go" <<'EOF'
package main

import (
	"bytes"
	"fmt"
	"os"
	"sort"
	"time"

	"golang.org/x/perf/benchfmt"
)

func main() {
	data, err := os.ReadFile(os.Args[1])
	if err != nil {
		panic(err)
	}
	var rates []float64
	values := 0
	for round := 0; round < 15; round++ {
		start := time.Now()
		r := benchfmt.NewReader(bytes.NewReader(data), "corpus")
		values = 0
		for r.Scan() {
			if res, ok := r.Result().(*benchfmt.Result); ok {
				values += len(res.Values)
			}
		}
		rates = append(rates, float64(len(data))/time.Since(start).Seconds()/1e6)
	}
	sort.Float64s(rates)
	fmt.Printf("upstream benchfmt.Reader: %.0f MB/s (median of 15 rounds, %d values)\n", rates[7], values)
}
EOF
(cd "$work/go" && GOFLAGS=-mod=mod go build -o parsebench ./cmd/parsebench)

echo "==> upstream's reader"
upstream=$("$work/go/parsebench" "$work/corpus.txt" | tee /dev/stderr | sed -E 's/.*: ([0-9]+) MB\/s.*/\1/')
echo "==> reader N (PERFSTORE_BENCH_ONLY=parse cargo bench -p perfstore)"
ours=$(PERFSTORE_BENCH_ONLY=parse cargo bench -q -p perfstore --bench perfstore 2>&1 |
  grep -E '^ *parse [0-9]+ MB' | tee /dev/stderr | sed -E 's/.*reader N ([0-9]+) MB\/s.*/\1/')
awk -v o="$ours" -v u="$upstream" 'BEGIN { printf "reader N %d MB/s, upstream %d MB/s: %.2fx\n", o, u, o / u }'
