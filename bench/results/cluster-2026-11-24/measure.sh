#!/usr/bin/env bash
# The measurements of bench/results/cluster-2026-11-24.md, as run:
#
#   a. arena over WebSocket and over the HTTP fallback, 500 and 1,000 bots,
#      against one node on its defaults (--handshake-rate 0);
#   b. forwarding: 1,000 arena bots on a two-node cluster with --forward
#      (half of every room on each node) and --redis (local and forwarded
#      players reported apart);
#   c. Redis commands per second at steady state, 1,000 arena bots on a
#      two-node cluster (INFO commandstats over 30 s);
#   d. drain: 1,000 arena bots through bin/lb on node A of a two-node
#      cluster (all rooms on A), SIGTERM A;
#   e. the same drain over the HTTP fallback with 500 bots (run with
#      PARTS=e; at 1,000 the fallback's POSTs through bin/lb saturate the
#      machine's two cores).
#
# Each run gets fresh server processes (and a fresh redis-server); every
# process started here is stopped by its PID. Everything is on loopback.
# REPEATS (3) sets the repetitions; PARTS ("a b c d") the parts to run.
# Raw reports go to bench/results/cluster-2026-11-24/raw/.
set -euo pipefail
cd "$(dirname "$0")/../../.."

OUT=bench/results/cluster-2026-11-24
RAW=$OUT/raw
REPEATS=${REPEATS:-3}
PARTS=${PARTS:-a b c d}
BASE=${MEASURE_PORT:-18600}
DURATION=${MEASURE_DURATION:-20s}
mkdir -p "$RAW" bin
go build -o bin/gameserver ./cmd/gameserver
go build -o bin/loadtest ./loadtest
go build -o bin/lb ./loadtest/lb
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
export GAMESERVER_CLUSTER_SECRET=measure-cluster-secret

# On exit, whatever this script started and is still running is killed
# (its background jobs, by PID).
cleanup() {
  local p
  for p in $(jobs -p); do kill -KILL "$p" 2>/dev/null || true; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

note() { echo "$*" | tee -a "$RAW/notes.txt"; }
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

# wait_ready URL: until it answers 200, at most 15 s.
wait_ready() {
  local i
  for ((i = 0; i < 150; i++)); do
    curl -fsS -o /dev/null --max-time 1 "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "not ready: $1" >&2
  return 1
}

# stop PID: SIGTERM, at most 20 s, then SIGKILL.
stop() {
  local i
  kill -TERM "$1" 2>/dev/null || return 0
  for ((i = 0; i < 200; i++)); do
    kill -0 "$1" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

# node NAME PORT LOG [FLAGS...]: starts a node; its PID is in $last.
node() {
  local name=$1 port=$2 log=$3
  shift 3
  bin/gameserver --addr "127.0.0.1:$port" --node "$name" --handshake-rate 0 --log-format json "$@" >"$log" 2>&1 &
  last=$!
}

# redis PORT: starts a redis-server; its PID is in $last.
redis() {
  redis-server --port "$1" --bind 127.0.0.1 --save '' --appendonly no --logfile /dev/null &
  last=$!
  local i
  for ((i = 0; i < 50; i++)); do
    redis-cli -p "$1" ping >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "redis-server did not start" >&2
  return 1
}

note "machine: $(nproc) CPUs, $(uname -r), $(go version | cut -d' ' -f3), revision $(git rev-parse --short HEAD)$(git diff --quiet || echo ' with uncommitted changes')"

# a. WebSocket against the fallback, one node.
if [[ " $PARTS " == *" a "* ]]; then
  port=$((BASE + 1))
  for bots in 500 1000; do
    for transport in ws sse; do
      for ((r = 1; r <= REPEATS; r++)); do
        name=a-$transport-$bots-$r
        node solo "$port" "$RAW/$name.log"
        spid=$last
        wait_ready "http://127.0.0.1:$port/readyz"
        note "$name: load average before $(loadavg)"
        bin/loadtest --scenario arena --bots "$bots" --transport "$transport" --duration "$DURATION" \
          --url "http://127.0.0.1:$port" --server-pid "$spid" --json >"$RAW/$name.json"
        stop "$spid"
      done
    done
  done
fi

# b. Forwarding: half of every room on each node of a two-node cluster.
if [[ " $PARTS " == *" b "* ]]; then
  rport=$((BASE + 10)) pa=$((BASE + 11)) pb=$((BASE + 12))
  for ((r = 1; r <= REPEATS; r++)); do
    name=b-forward-1000-$r
    redis "$rport"
    rpid=$last
    node node-a "$pa" "$RAW/$name-a.log" --redis "redis://127.0.0.1:$rport/0"
    apid=$last
    node node-b "$pb" "$RAW/$name-b.log" --redis "redis://127.0.0.1:$rport/0"
    bpid=$last
    wait_ready "http://127.0.0.1:$pa/readyz"
    wait_ready "http://127.0.0.1:$pb/readyz"
    sleep 2 # each node sees the other
    note "$name: load average before $(loadavg)"
    bin/loadtest --scenario arena --bots 1000 --forward --redis "redis://127.0.0.1:$rport/0" \
      --url "http://127.0.0.1:$pa,http://127.0.0.1:$pb" --duration "$DURATION" --server-pid "$apid" --json >"$RAW/$name.json"
    stop "$apid" &
    spid=$!
    stop "$bpid"
    wait "$spid"
    stop "$rpid"
  done
fi

# c. Redis commands at steady state: 1,000 arena bots (join-or-create,
# spread over both nodes), INFO commandstats 30 s apart in the window.
if [[ " $PARTS " == *" c "* ]]; then
  rport=$((BASE + 20)) pa=$((BASE + 21)) pb=$((BASE + 22))
  for ((r = 1; r <= REPEATS; r++)); do
    name=c-redis-1000-$r
    redis "$rport"
    rpid=$last
    node node-a "$pa" "$RAW/$name-a.log" --redis "redis://127.0.0.1:$rport/0"
    apid=$last
    node node-b "$pb" "$RAW/$name-b.log" --redis "redis://127.0.0.1:$rport/0"
    bpid=$last
    wait_ready "http://127.0.0.1:$pa/readyz"
    wait_ready "http://127.0.0.1:$pb/readyz"
    sleep 2
    note "$name: load average before $(loadavg)"
    bin/loadtest --scenario arena --bots 1000 --url "http://127.0.0.1:$pa,http://127.0.0.1:$pb" \
      --duration 45s --server-pid "$apid" --json >"$RAW/$name.json" &
    lpid=$!
    sleep 10 # ramp and joins done
    { date +%s.%N; redis-cli -p "$rport" info stats | grep total_commands_processed; redis-cli -p "$rport" info commandstats; } >"$RAW/$name-redis-t0.txt"
    sleep 30
    { date +%s.%N; redis-cli -p "$rport" info stats | grep total_commands_processed; redis-cli -p "$rport" info commandstats; } >"$RAW/$name-redis-t1.txt"
    redis-cli -p "$rport" dbsize >"$RAW/$name-redis-dbsize.txt"
    wait "$lpid"
    stop "$apid" &
    spid=$!
    stop "$bpid"
    wait "$spid"
    stop "$rpid"
  done
fi

# d. Drain: every room on node A (B starts after the bots joined), the
# bots behind bin/lb, SIGTERM A in the measured window. e is the same over
# the HTTP fallback.
drain() { # drain NAME TRANSPORT BOTS
  local name=$1 transport=$2 bots=$3 i t0 t1
  local rport=$((BASE + 30)) pa=$((BASE + 31)) pb=$((BASE + 32)) plb=$((BASE + 33))
  redis "$rport"
  rpid=$last
  node node-a "$pa" "$RAW/$name-a.log" --redis "redis://127.0.0.1:$rport/0"
  apid=$last
  wait_ready "http://127.0.0.1:$pa/readyz"
  bin/lb --addr "127.0.0.1:$plb" --backends "127.0.0.1:$pa,127.0.0.1:$pb" --check-interval 100ms >"$RAW/$name-lb.log" 2>&1 &
  lbpid=$!
  wait_ready "http://127.0.0.1:$plb/readyz"
  note "$name: load average before $(loadavg)"
  bin/loadtest --scenario arena --bots "$bots" --transport "$transport" --url "http://127.0.0.1:$plb" --duration 40s --json >"$RAW/$name.json" &
  lpid=$!
  sleep 8 # ramp and joins done: every room is on A
  node node-b "$pb" "$RAW/$name-b.log" --redis "redis://127.0.0.1:$rport/0"
  bpid=$last
  wait_ready "http://127.0.0.1:$pb/readyz"
  sleep 3 # A sees B; the load balancer has B in rotation
  curl -fsS "http://127.0.0.1:$pa/metrics" | grep -E '^gameserver_(players|sessions|rooms)' >"$RAW/$name-a-before.txt" || true
  t0=$(date +%s.%N)
  kill -TERM "$apid"
  for ((i = 0; i < 300; i++)); do kill -0 "$apid" 2>/dev/null || break; sleep 0.05; done
  t1=$(date +%s.%N)
  wait "$apid" 2>/dev/null || true
  echo "sigterm $t0 exited $t1" >"$RAW/$name-times.txt"
  curl -fsS "http://127.0.0.1:$pb/metrics" | grep -E '^gameserver_(players|sessions|rooms|sessions_resumed)' >"$RAW/$name-b-after.txt" || true
  wait "$lpid"
  stop "$lbpid"
  stop "$bpid"
  stop "$rpid"
}
if [[ " $PARTS " == *" d "* ]]; then
  for ((r = 1; r <= REPEATS; r++)); do drain "d-drain-1000-$r" ws 1000; done
fi
if [[ " $PARTS " == *" e "* ]]; then
  for ((r = 1; r <= REPEATS; r++)); do drain "e-drain-sse-500-$r" sse 500; done
fi
note "done: load average after $(loadavg)"
