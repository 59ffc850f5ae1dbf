#!/usr/bin/env bash
# What one large upload costs the coordinator in memory: generates a benchmark file of
# about MB megabytes, starts a fresh `coordinator serve` from BIN_DIR on a free loopback
# port with a temporary data dir, uploads the file once with curl and prints the
# coordinator's RSS before, its peak (VmHWM) and RSS after, with the time taken.
#
# usage: perfstore/benches/upload-memory.sh BIN_DIR [MB]   (default 60 MB)
set -euo pipefail
bin=$(cd "${1:?usage: upload-memory.sh BIN_DIR [MB]}" && pwd)
mb=${2:-60}
work=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$work"' EXIT
python3 - "$work/big.txt" "$mb" <<'PY'
import random, sys
random.seed(7)
path, mb = sys.argv[1], int(sys.argv[2])
with open(path, "w") as out:
    out.write("goos: linux\ngoarch: amd64\npkg: example.com/big\ncpu: Test CPU @ 2.00GHz\n")
    size, i = 0, 0
    while size < mb * 1_000_000:
        line = (f"BenchmarkThing/size={i % 500}/mode={i % 7}-8 \t 1000000\t "
                f"{random.uniform(10, 1000):.1f} ns/op\t {i % 4096} B/op\t {i % 13} allocs/op\n")
        out.write(line)
        size += len(line)
        i += 1
PY
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
(cd "$work" && exec "$bin/coordinator" serve --data-dir data --listen "127.0.0.1:$port" >log 2>&1) &
pid=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
kib() { awk -v k="$1" '$1 == k":" {print $2}' "/proc/$pid/status"; }
before=$(kib VmRSS)
start=$(date +%s.%N)
code=$(curl -s -o "$work/resp" -w '%{http_code}' -F "file=@$work/big.txt" "http://127.0.0.1:$port/perf/upload")
end=$(date +%s.%N)
echo "file $(stat -c %s "$work/big.txt") bytes: HTTP $code; RSS before $((before / 1024)) MiB," \
  "peak $(($(kib VmHWM) / 1024)) MiB, after $(($(kib VmRSS) / 1024)) MiB;" \
  "$(python3 -c "print(f'{$end - $start:.1f}')") s"
