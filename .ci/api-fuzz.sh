#!/usr/bin/env bash
# Fuzzes the running reference coordinator's JSON API with schemathesis, a property-based
# API fuzzer from PyPI, driven by the OpenAPI description the coordinator generates from
# its own code (/api/openapi.json): no 500s, no crash, every response as described. Run
# by .ci/run after `cargo build --workspace --bins`; bounded by --max-examples per
# operation and a time limit per run. Prints the generated-request count and failures.
#
# usage: .ci/api-fuzz.sh [MAX_EXAMPLES]   (default 100)
set -euo pipefail
cd "$(dirname "$0")/.."
max=${1:-100}
work=$(mktemp -d)
coordinator="${CARGO_TARGET_DIR:-$PWD/target}/debug/coordinator"
[ -x "$coordinator" ] || { echo "api-fuzz: build the binaries first (cargo build --workspace --bins)"; exit 1; }

# schemathesis, pinned, in a virtual environment of its own.
python3 -m venv "$work/venv"
"$work/venv/bin/pip" install -q 'schemathesis==4.32.5'

# The coordinator on its embedded defaults (it builds this checkout), with an admin token.
token=$("$coordinator" token create --name api-fuzz --role admin --data-dir "$work/data")
"$coordinator" serve --data-dir "$work/data" --listen 127.0.0.1:0 >"$work/out" 2>"$work/err" &
pid=$!
trap 'kill $pid 2>/dev/null || true; rm -rf "$work"' EXIT
url=""
for _ in $(seq 300); do
  url=$(sed -n 's|^serving \(http://[0-9.:]*\)/$|\1|p' "$work/out" | head -1)
  [ -n "$url" ] && break
  sleep 0.2
done
[ -n "$url" ] || { cat "$work/err"; echo "api-fuzz: the coordinator did not start"; exit 1; }

status=0
run() {
  local who=$1; shift
  echo "api-fuzz: as $who"
  # From the scratch directory: schemathesis keeps a cache where it runs.
  if ! (cd "$work" && timeout 600 "$work/venv/bin/schemathesis" run "$url/api/openapi.json" \
      --checks all --max-examples "$max" --seed 20261202 "$@") >"$work/st.log" 2>&1; then
    status=1
  fi
  # The summary: phases, failures and the count of generated requests.
  sed -n '/=== SUMMARY ===/,$p' "$work/st.log"
  grep -qE 'No issues found|[0-9]+ generated, [0-9]+ passed' "$work/st.log" || status=1
  [ $status -eq 0 ] || tail -80 "$work/st.log"
}
run "an admin token" -H "Authorization: Bearer $token"
run "no token (writes must answer 401)"

kill -0 $pid 2>/dev/null || { echo "api-fuzz: the coordinator died"; tail -20 "$work/err"; exit 1; }
if grep -q "panicked" "$work/err"; then
  grep -B2 -A10 "panicked" "$work/err" | head -40
  echo "api-fuzz: the coordinator panicked"
  exit 1
fi
[ $status -eq 0 ] && echo "api-fuzz: no failures" || echo "api-fuzz: FAILED"
exit $status
