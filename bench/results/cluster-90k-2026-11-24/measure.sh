#!/usr/bin/env bash
# 90,000 idle players on a local cluster: five nodes and one redis-server
# on this machine, each node under the 20,000-descriptor limit, the driver
# split into five processes (one per 18,000 bots) over 40 loopback source
# addresses. Everything is on 127.0.0.0/8; every process started here is
# stopped here, by its PID.
#
#   bash bench/results/cluster-90k-2026-11-24/measure.sh [bots] [join]
#
# Writes raw/ next to this script: the driver's JSON report, each node's
# /metrics and /proc status while the bots are connected, and redis INFO.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here/../../.."

BOTS=${1:-90000}
JOIN=${2:-true}
NODES=5
BASE=${CLUSTER90K_PORT:-18700}
DURATION=${CLUSTER90K_DURATION:-40s}
raw="$here/raw"
mkdir -p bin "$raw"
rm -f "$raw"/*

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
go build -o bin/gameserver ./cmd/gameserver
go build -o bin/loadtest ./loadtest

export GAMESERVER_CLUSTER_SECRET=cluster-90k-measurement
pids=() # stopped in reverse order: the nodes, then redis-server
cleanup() {
  local i pid
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    pid=${pids[$i]}
    kill -TERM "$pid" 2>/dev/null || continue
    for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
}
trap cleanup EXIT

redis-server --port "$BASE" --bind 127.0.0.1 --save '' --appendonly no >"$raw/redis.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do redis-cli -p "$BASE" ping >/dev/null 2>&1 && break; sleep 0.1; done
urls=()
node_pids=()
for i in $(seq 1 $NODES); do
  port=$((BASE + i))
  bin/gameserver --addr "127.0.0.1:$port" --node "node-$i" --redis "redis://127.0.0.1:$BASE/0" \
    --log-format json >"$raw/node-$i.log" 2>&1 &
  pids+=($!)
  node_pids+=($!)
  urls+=("http://127.0.0.1:$port")
done
for u in "${urls[@]}"; do
  for _ in $(seq 1 150); do curl -fsS -o /dev/null --max-time 1 "$u/readyz" 2>/dev/null && break; sleep 0.1; done
done
for i in $(seq 1 $NODES); do grep VmRSS "/proc/${node_pids[$((i - 1))]}/status" >"$raw/node-$i.base.txt"; done
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)" >"$raw/notes.txt"

url=$(IFS=,; echo "${urls[*]}")
server_pids=$(IFS=,; echo "${node_pids[*]}")
bin/loadtest --scenario idle --join="$JOIN" --bots "$BOTS" --ramp 3000 --duration "$DURATION" \
  --url "$url" --source 127.0.0.2-127.0.0.41 --server-pid "$server_pids" --json \
  >"$raw/driver.json" 2>"$raw/driver.err" &
driver=$!
# Sample every node while the bots are held (after the ramp).
secs=${DURATION%s}
sleep $((BOTS / 3000 + secs / 2))
for i in $(seq 1 $NODES); do
  pid=${node_pids[$((i - 1))]}
  grep -E 'VmRSS|Threads' "/proc/$pid/status" >"$raw/node-$i.status.txt"
  ls "/proc/$pid/fd" | wc -l >"$raw/node-$i.fds.txt"
  curl -fsS "${urls[$((i - 1))]}/metrics" >"$raw/node-$i.metrics.txt" || true
done
redis-cli -p "$BASE" info memory >"$raw/redis-info.txt" 2>&1 || true
redis-cli -p "$BASE" dbsize >>"$raw/redis-info.txt" 2>&1 || true
wait "$driver"
echo "driver exit $?" >>"$raw/notes.txt"
