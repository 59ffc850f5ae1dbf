#!/usr/bin/env bash
# A real Go build by the reference coordinator, as upstream's coordinator ran one:
# this machine's own Go source tree (`go env GOROOT`) committed to a scratch git
# repository, `src/make.bash` on one local buildlet, the tree kept as a snapshot, then a
# slice of `go tool dist test` units sharded across helper buildlets started from it.
#
#   coordinator-bin/examples/go-build.sh [HELPERS...]      # default: 0 2
#
# Each HELPERS value is one build of the same revision with that many helpers (a
# builder per value, all on one local pool). The first build of each builder runs make;
# the script prints make time, the test slice's wall time and the per-unit results, and
# keeps everything under $WORK (default: a new temporary directory).
#
# Units run one per exec here (no grouping), so the helpers have units to share on the
# first build; a farm keeps `group_prefix = "go_test:"`, which needs recorded durations.
#
# Not a CI test: it takes minutes and a few GiB of disk. Needs go, git, curl, python3.
set -euo pipefail

helpers=("${@:-0 2}")
read -r -a helpers <<<"${helpers[*]}"
root=$(cd "$(dirname "$0")/../.." && pwd)
goroot=$(go env GOROOT)
work=${WORK:-$(mktemp -d)}
units=${UNITS:-go_test:errors go_test:sort go_test:strings go_test:bytes go_test:fmt go_test:strconv go_test:unicode/utf8 go_test:container/list go_test:path go_test:math/bits}
echo "work dir: $work"
echo "go tree:  $goroot ($(go version))"

cargo build --release -q -p coordinator-bin --bin coordinator --manifest-path "$root/Cargo.toml"
coordinator="${CARGO_TARGET_DIR:-$root/target}/release/coordinator"

# The source: the Go tree as one commit.
src="$work/go"
if [ ! -d "$src/.git" ]; then
    echo "copying the Go tree into a git repository…"
    mkdir -p "$src"
    cp -a "$goroot/." "$src/"
    rm -rf "$src/bin" "$src/pkg"
    git -C "$src" init -q -b master
    git -C "$src" add -A
    git -C "$src" -c user.name=go-build -c user.email=go-build@example.invalid \
        commit -q -m "Go $(go env GOVERSION) as installed"
fi
rev=$(git -C "$src" rev-parse HEAD)

# One builder per helper count; the pool has room for the largest build's helpers.
max=0
builders=""
for h in "${helpers[@]}"; do
    ((h > max)) && max=$h
    only=$(printf '"%s", ' $units)
    builders+="
[[builders]]
name = \"go-h$h\"
host_type = \"host-go\"
policy = \"linux-amd64\"
pipeline = \"go\"
sources = [\"go\"]
env = [\"GOROOT_BOOTSTRAP=$goroot\"]
step_timeout_secs = 3600
tests = { list = [\"bin/go\", \"tool\", \"dist\", \"test\", \"--no-rebuild\", \"--list\"], run = [\"bin/go\", \"tool\", \"dist\", \"test\", \"--no-rebuild\", \"--banner=XXXBANNERXXX:\", \"{units}\"], helpers = $h, banner = \"XXXBANNERXXX:\", go_names = true, policy_filter = true, only = [${only%, }] }
"
done
cat >"$work/coordinator.toml" <<EOF
listen = "127.0.0.1:0"
reverse_listen = "127.0.0.1:0"
data_dir = "$work/data"
poll_secs = 3600

# No branches: nothing is polled, so only the builds this script asks for run.
[[sources]]
name = "go"
url = "$src"
branches = []
$builders
[pools.local]
host-go = $((max + 1))
EOF

# Queuing builds needs a token (the coordinator's own CLI makes one).
token=$("$coordinator" token create --name go-build --role submitter --config "$work/coordinator.toml")
"$coordinator" serve --config "$work/coordinator.toml" >"$work/coordinator.out" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
port=""
for _ in $(seq 100); do
    port=$(sed -n 's|^serving http://127.0.0.1:\([0-9]*\).*|\1|p' "$work/coordinator.out" | head -1)
    [ -n "$port" ] && break
    sleep 0.2
done
[ -n "$port" ] || { cat "$work/coordinator.out"; exit 1; }
base="http://127.0.0.1:$port"
echo "coordinator: $base (revision $rev)"

# The builders run one after another, so each has the machine to itself.
for h in "${helpers[@]}"; do
    id=$(curl -fsS -X POST -H "Authorization: Bearer $token" "$base/api/builds" \
        -d "{\"source\":\"go\",\"rev\":\"$rev\",\"builder\":\"go-h$h\"}" |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
    echo "go-h$h: build $id ($base/build/$id)"
    while :; do
        state=$(curl -fsS "$base/api/builds/$id" | python3 -c 'import json,sys; print(json.load(sys.stdin)["state"])')
        case $state in succeeded | failed | canceled) break ;; esac
        sleep 5
    done
    curl -fsS "$base/log/$id" >"$work/go-h$h.log"
    curl -fsS "$base/api/builds/$id/units" >"$work/go-h$h.units.json"
    echo "go-h$h: $state"
    grep -E '^(\$ src/make.bash|snapshot .* kept|starting_tests|helper .* joins|All tests passed|FAILED)' "$work/go-h$h.log" || true
    python3 - "$work/go-h$h.units.json" "$base/build/$id" <<'EOF'
import json, sys, urllib.request, html, re
units = json.load(open(sys.argv[1]))
page = urllib.request.urlopen(sys.argv[2]).read().decode()
# The steps table: name and duration of each step.
for name, took in re.findall(r"<td><code>([^<]*)</code></td><td class=\"muted\">[^<]*</td><td class=\"num\">([^<]*)</td>", page):
    print(f"  step {html.unescape(name):<40} {took}")
total = sum(u["millis"] for u in units)
print(f"  {len(units)} unit runs, {total / 1000:.1f} s of unit time, on {len({u['buildlet'] for u in units})} buildlet(s):")
for u in units:
    print(f"    {u['millis'] / 1000:7.1f} s  {u['result']:<4}  {u['buildlet']:<16}  {u['name']}")
EOF
done
echo "logs and unit results: $work"
