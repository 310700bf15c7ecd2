#!/usr/bin/env bash
# Benchmark suite (make bench): builds the server and the load-test
# driver, runs a fixed matrix of load tests against a fresh server each
# (idle at 5k, 10k and 19k connections; arena at 1k, 2.5k, 3.5k, 5k and 7.5k
# bots over WebSocket, 500 and 1.5k over the HTTP fallback), runs the Go micro-benchmarks, and writes
# bench/results/<date>.md with a table and an SVG plot (the raw reports in
# bench/results/<date>/). Everything runs on
# loopback; every process it starts it stops by PID. About 10 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."

PORT=${BENCH_PORT:-18181}
SOURCES=${BENCH_SOURCES:-127.0.0.2-127.0.0.41}
IDLE_DURATION=${BENCH_IDLE_DURATION:-20s}
ARENA_DURATION=${BENCH_ARENA_DURATION:-20s}
URL="http://127.0.0.1:$PORT"

# As many descriptors as allowed: the server holds one per connection.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
echo "descriptor limit: $(ulimit -n)"

mkdir -p bin bench/results
go build -o bin/gameserver ./cmd/gameserver
go build -o bin/loadtest ./loadtest
go build -o bin/benchreport ./bench/benchreport

work=$(mktemp -d)
server_pid=""
# Other processes on the machine skew the figures: say how busy it was.
echo "load average before the run: $(cut -d' ' -f1-3 /proc/loadavg) (1, 5 and 15 min)" >"$work/notes.txt"

stop_server() {
  if [ -n "$server_pid" ]; then
    kill -TERM "$server_pid" 2>/dev/null || true
    for _ in $(seq 1 150); do
      kill -0 "$server_pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=""
  fi
}
cleanup() {
  stop_server
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

start_server() {
  bin/gameserver --addr "127.0.0.1:$PORT" --log-format json >"$work/server-$1.log" 2>&1 &
  server_pid=$!
  if ! bin/benchreport wait "$URL/readyz" 15s; then
    echo "the server did not start; its log:" >&2
    tail -20 "$work/server-$1.log" >&2
    exit 1
  fi
}

# run NAME ARGS...: one configuration against a fresh server.
run() {
  local name=$1
  shift
  start_server "$name"
  echo "== $name"
  if timeout 600 bin/loadtest --url "$URL" --server-pid "$server_pid" --source "$SOURCES" --json "$@" \
    >"$work/$name.json" 2>"$work/$name.err"; then
    grep -E '^  "(connected|errors|p99_ms|tick_p99_ms|server_cpu_pct|rss_per_conn_kib)"' "$work/$name.json" | tr -d ' \n'
    echo
  else
    echo "$name: the driver failed: $(tail -3 "$work/$name.err")" | tee -a "$work/notes.txt"
    rm -f "$work/$name.json"
  fi
  stop_server
}

# Do rooms exist? Until they do, JOIN answers 404 and the configurations
# that need rooms are skipped.
start_server probe
rooms=yes
if ! bin/loadtest --url "$URL" --scenario arena --bots 2 --duration 1s --json >"$work/probe.json" 2>/dev/null ||
  grep -q '"rooms_missing": true' "$work/probe.json"; then
  rooms=no
fi
stop_server
echo "rooms: $rooms"

idle_join=()
if [ "$rooms" = no ]; then
  idle_join=(--join=false)
  echo "idle: the server has no rooms (JOIN answered 404), so idle bots stay outside rooms" >>"$work/notes.txt"
fi
for n in 5000 10000 19000; do
  run "idle-$n" --scenario idle "${idle_join[@]}" --bots "$n" --ramp 2000 --duration "$IDLE_DURATION"
done
for n in 1000 2500 3500 5000 7500; do
  if [ "$rooms" = no ]; then
    echo "arena at $n bots: skipped, the server answered JOIN with 404 (no rooms yet)" >>"$work/notes.txt"
    continue
  fi
  run "arena-$n" --scenario arena --bots "$n" --ramp 1000 --duration "$ARENA_DURATION"
done
# The same game over the HTTP fallback (an event stream and POSTs a player).
for n in 500 1500; do
  if [ "$rooms" = no ]; then
    continue
  fi
  run "arena-sse-$n" --scenario arena --transport sse --bots "$n" --ramp 500 --duration "$ARENA_DURATION"
done

echo "== Go micro-benchmarks"
go test -run '^$' -bench . -benchmem -timeout 10m ./... >"$work/gobench.txt" 2>&1 ||
  echo "some micro-benchmarks failed; their output is in the page" >>"$work/notes.txt"

date=$(date -u +%Y-%m-%d)
out="bench/results/$date"
i=2
while [ -e "$out.md" ]; do
  out="bench/results/$date-$i"
  i=$((i + 1))
done
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ -n "$(git status --porcelain 2>/dev/null)" ]; then
  commit="$commit (with uncommitted changes)"
fi
# The raw reports stay beside the page, so it can be rendered again.
mkdir -p "$out"
reports=()
for f in "$work"/idle-*.json "$work"/arena-*.json; do
  if [ -e "$f" ]; then
    cp "$f" "$out/"
    reports+=("$out/$(basename "$f")")
  fi
done
cp "$work/notes.txt" "$work/gobench.txt" "$out/"
bin/benchreport render --out "$out.md" --svg "$out.svg" --gobench "$work/gobench.txt" \
  --notes "$work/notes.txt" --commit "$commit" "${reports[@]}"
echo "wrote $out.md, $out.svg and the raw reports in $out/"
