#!/usr/bin/env bash
# A local three-node cluster to try (make cluster): a redis-server on a
# free loopback port (or $REDIS_URL), three gameserver nodes on
# 127.0.0.1:8081-8083 in cluster mode, and a small round-robin load
# balancer on 127.0.0.1:8080 in front of them that takes a node out of
# rotation while its /readyz fails (loadtest/lb). It prints the URLs and
# runs until Ctrl-C, then stops everything it started, by PID.
#
# A node that exits (kill -TERM <pid> drains it) is started again, as a
# new process with a new node ID, after CLUSTER_RESTART_DELAY seconds:
# one node at a time, that is a rolling restart. CLUSTER_RESTART=0 turns
# this off.
#
# Environment: REDIS_URL (use this Redis instead of starting one),
# CLUSTER_LB_PORT (8080), CLUSTER_PORTS ("8081 8082 8083"), CLUSTER_DIR
# (logs and PID files; default: a new directory under /tmp),
# CLUSTER_RESTART (1), CLUSTER_RESTART_DELAY (1 s), CLUSTER_MAX_TIME
# (seconds after which the script stops everything on its own; 8 h).
set -euo pipefail
cd "$(dirname "$0")/.."

LB_PORT=${CLUSTER_LB_PORT:-8080}
read -r -a PORTS <<<"${CLUSTER_PORTS:-8081 8082 8083}"
RESTART=${CLUSTER_RESTART:-1}
RESTART_DELAY=${CLUSTER_RESTART_DELAY:-1}
MAX_TIME=${CLUSTER_MAX_TIME:-28800}
MAX_RESTARTS=100
DIR=${CLUSTER_DIR:-$(mktemp -d /tmp/gameserver-cluster.XXXXXX)}
mkdir -p "$DIR"
N=${#PORTS[@]}

# in_use PORT: something accepts connections on 127.0.0.1:PORT.
in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# wait_ready URL SECONDS: until URL answers 200, at most SECONDS.
wait_ready() {
  local i
  for ((i = 0; i < $2 * 10; i++)); do
    if curl -fsS -o /dev/null --max-time 1 "$1" 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  return 1
}

command -v curl >/dev/null || { echo "cluster: curl is needed" >&2; exit 1; }
for p in "$LB_PORT" "${PORTS[@]}"; do
  if in_use "$p"; then
    echo "cluster: 127.0.0.1:$p is in use; set CLUSTER_LB_PORT or CLUSTER_PORTS to free ports" >&2
    exit 1
  fi
done

# What the script starts runs in its own session, so that Ctrl-C reaches
# only the script, which then stops everything in order.
detach=()
command -v setsid >/dev/null && detach=(setsid)

echo "building bin/gameserver and bin/lb"
mkdir -p bin
go build -o bin/gameserver ./cmd/gameserver
go build -o bin/lb ./loadtest/lb

redis_pid=""
lb_pid=""
node_pid=()  # by node index 0..N-1
node_id=()
node_gen=()
node_down=() # 1 once a node exited and is not started again

# stop_pid PID SECONDS: SIGTERM, then SIGKILL after SECONDS.
stop_pid() {
  local pid=$1 i
  [ -n "$pid" ] || return 0
  kill -TERM "$pid" 2>/dev/null || return 0
  for ((i = 0; i < $2 * 10; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

cleanup() {
  trap - INT TERM EXIT
  echo
  echo "stopping the cluster"
  stop_pid "$lb_pid" 5
  local i
  # Every node drains at once (none has a node to move to), then exits.
  for ((i = 0; i < ${#node_pid[@]}; i++)); do
    [ "${node_down[$i]:-0}" = 1 ] || kill -TERM "${node_pid[$i]}" 2>/dev/null || true
  done
  for ((i = 0; i < ${#node_pid[@]}; i++)); do
    [ "${node_down[$i]:-0}" = 1 ] || stop_pid "${node_pid[$i]}" 15
  done
  stop_pid "$redis_pid" 5
  echo "stopped; logs are in $DIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Redis.
if [ -n "${REDIS_URL:-}" ]; then
  redis_url=$REDIS_URL
  echo "using Redis at $redis_url"
else
  command -v redis-server >/dev/null || { echo "cluster: redis-server is needed (or set REDIS_URL)" >&2; exit 1; }
  redis_port=""
  for ((i = 0; i < 100; i++)); do
    p=$((16379 + RANDOM % 20000))
    if ! in_use "$p"; then redis_port=$p; break; fi
  done
  [ -n "$redis_port" ] || { echo "cluster: no free port for Redis" >&2; exit 1; }
  "${detach[@]}" redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no \
    --dir "$DIR" --logfile "$DIR/redis.log" &
  redis_pid=$!
  echo "$redis_pid" >"$DIR/redis.pid"
  for ((i = 0; i < 50; i++)); do
    redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break
    sleep 0.1
  done
  redis-cli -p "$redis_port" ping >/dev/null 2>&1 || { echo "cluster: redis-server did not start (see $DIR/redis.log)" >&2; exit 1; }
  redis_url="redis://127.0.0.1:$redis_port/0"
fi

# The node-to-node secret goes through the environment: command lines are
# visible to every user of the machine.
GAMESERVER_CLUSTER_SECRET=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
export GAMESERVER_CLUSTER_SECRET
# So is the key of the REST API and the monitor: yours, or a new one.
GAMESERVER_API_KEYS=${GAMESERVER_API_KEYS:-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')}
export GAMESERVER_API_KEYS
api_key=${GAMESERVER_API_KEYS%%,*}

# start_node I: starts (or starts again) node I on PORTS[I].
start_node() {
  local i=$1 gen=${node_gen[$1]:-0}
  node_gen[$i]=$((gen + 1))
  if [ "$gen" -eq 0 ]; then node_id[$i]="node-$((i + 1))"; else node_id[$i]="node-$((i + 1))-r$gen"; fi
  "${detach[@]}" bin/gameserver --addr "127.0.0.1:${PORTS[$i]}" --node "${node_id[$i]}" --redis "$redis_url" \
    --trusted-proxies 127.0.0.1 --handshake-rate 0 --log-format json >>"$DIR/node-$((i + 1)).log" 2>&1 &
  node_pid[$i]=$!
  node_down[$i]=0
  echo "${node_pid[$i]}" >"$DIR/node-$((i + 1)).pid"
}

for ((i = 0; i < N; i++)); do start_node "$i"; done
for ((i = 0; i < N; i++)); do
  wait_ready "http://127.0.0.1:${PORTS[$i]}/readyz" 15 ||
    { echo "cluster: ${node_id[$i]} did not start (see $DIR/node-$((i + 1)).log)" >&2; exit 1; }
done
backends=$(printf '127.0.0.1:%s,' "${PORTS[@]}")
"${detach[@]}" bin/lb --addr "127.0.0.1:$LB_PORT" --backends "${backends%,}" >>"$DIR/lb.log" 2>&1 &
lb_pid=$!
echo "$lb_pid" >"$DIR/lb.pid"
wait_ready "http://127.0.0.1:$LB_PORT/readyz" 10 ||
  { echo "cluster: the load balancer did not start (see $DIR/lb.log)" >&2; exit 1; }

echo
echo "The cluster is up."
echo "  play:          http://127.0.0.1:$LB_PORT/ (the demo pages, through the load balancer)"
echo "  clients:       ws://127.0.0.1:$LB_PORT/ws"
echo "  monitor:       http://127.0.0.1:$LB_PORT/monitor (every node; API key $api_key)"
echo "  REST API:      curl -H \"Authorization: Bearer $api_key\" http://127.0.0.1:$LB_PORT/api/v1/rooms"
for ((i = 0; i < N; i++)); do
  echo "  ${node_id[$i]}:        http://127.0.0.1:${PORTS[$i]}/metrics  (PID ${node_pid[$i]})"
done
echo "  redis:         $redis_url${redis_pid:+  (PID $redis_pid)}"
echo "  load balancer: PID $lb_pid"
echo "  logs and PID files: $DIR"
echo
if [ "$RESTART" = 1 ]; then
  echo "Rolling restart: kill -TERM \$(cat $DIR/node-1.pid) drains node-1; once it exits it is"
  echo "started again. Ctrl-C stops everything."
else
  echo "Ctrl-C stops everything."
fi

# Watch the nodes until Ctrl-C (or CLUSTER_MAX_TIME).
restarts=0
for ((t = 0; t < MAX_TIME; t++)); do
  sleep 1
  for ((i = 0; i < N; i++)); do
    [ "${node_down[$i]}" = 1 ] && continue
    pid=${node_pid[$i]}
    kill -0 "$pid" 2>/dev/null && continue
    status=0
    wait "$pid" 2>/dev/null || status=$?
    echo "$(date +%T) ${node_id[$i]} (PID $pid) exited with status $status"
    if [ "$RESTART" != 1 ] || [ "$restarts" -ge "$MAX_RESTARTS" ]; then
      node_down[$i]=1
      continue
    fi
    restarts=$((restarts + 1))
    sleep "$RESTART_DELAY"
    start_node "$i"
    if wait_ready "http://127.0.0.1:${PORTS[$i]}/readyz" 15; then
      echo "$(date +%T) ${node_id[$i]} started on :${PORTS[$i]} (PID ${node_pid[$i]})"
    else
      echo "$(date +%T) ${node_id[$i]} did not become ready (see $DIR/node-$((i + 1)).log)"
    fi
  done
done
echo "cluster: CLUSTER_MAX_TIME ($MAX_TIME s) reached"
