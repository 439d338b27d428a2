#!/usr/bin/env bash
# A real 3-node RabbitMQ cluster of the installed package, on one machine, loopback only, for the
# mirroring tests. It never touches the machine's own broker (rabbit@localhost, 5672/15672,
# /etc/rabbitmq): each node has its own name, ports, data, logs, config and plugins file, and
# the three share a private Erlang cookie through a private HOME.
#
# Usage: scripts/cluster.sh start|stop|status|stop-node N|start-node N|env     (N = 1, 2 or 3)
#
#   node               AMQP   management   distribution
#   topo-a@localhost   5681   15681        25681
#   topo-b@localhost   5682   15682        25682
#   topo-c@localhost   5683   15683        25683
#
# State lives in ${TOPO_CLUSTER_DIR:-/tmp/topo-cluster}; `stop` removes it. Needs root (the
# package's server script is run directly, as root, so no user switch is needed).
set -euo pipefail

BASE="${TOPO_CLUSTER_DIR:-/tmp/topo-cluster}"
WAIT="${TOPO_CLUSTER_WAIT:-120}"
NAMES=(a b c)
SERVER=/usr/lib/rabbitmq/bin/rabbitmq-server
CTL=/usr/lib/rabbitmq/bin/rabbitmqctl

log() { printf 'cluster: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

node_name() { echo "topo-${NAMES[$1]}@localhost"; }
amqp_port() { echo $((5681 + $1)); }
mgmt_port() { echo $((15681 + $1)); }
dist_port() { echo $((25681 + $1)); }

# The environment every command about node $1 runs with.
node_env() {
  local i=$1 dir="$BASE/${NAMES[$1]}"
  echo HOME="$BASE/home" \
    RABBITMQ_NODENAME="$(node_name "$i")" \
    RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 \
    RABBITMQ_NODE_PORT="$(amqp_port "$i")" \
    RABBITMQ_DIST_PORT="$(dist_port "$i")" \
    RABBITMQ_MNESIA_BASE="$dir/mnesia" \
    RABBITMQ_LOG_BASE="$dir/log" \
    RABBITMQ_PID_FILE="$dir/pid" \
    RABBITMQ_CONFIG_FILE="$dir/rabbitmq.conf" \
    RABBITMQ_ADVANCED_CONFIG_FILE="$dir/advanced.config" \
    RABBITMQ_ENABLED_PLUGINS_FILE="$dir/enabled_plugins" \
    RABBITMQ_CONF_ENV_FILE="$BASE/rabbitmq-env.conf"
}

ctl() {
  local i=$1
  shift
  env $(node_env "$i") RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}" \
    "$CTL" -n "$(node_name "$i")" "$@"
}

prepare() {
  mkdir -p "$BASE/home"
  # One private cookie for the three nodes and for rabbitmqctl; never the machine broker's.
  if [[ ! -f "$BASE/home/.erlang.cookie" ]]; then
    head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' | head -c 32 >"$BASE/home/.erlang.cookie"
    chmod 600 "$BASE/home/.erlang.cookie"
  fi
  # An empty env file, so /etc/rabbitmq/rabbitmq-env.conf cannot rename the nodes.
  : >"$BASE/rabbitmq-env.conf"
  for i in 0 1 2; do
    local dir="$BASE/${NAMES[$i]}"
    mkdir -p "$dir/mnesia" "$dir/log"
    cat >"$dir/rabbitmq.conf" <<EOF
listeners.tcp.1 = 127.0.0.1:$(amqp_port "$i")
management.tcp.ip = 127.0.0.1
management.tcp.port = $(mgmt_port "$i")
# Test machines may have little free disk; never block publishers over it.
disk_free_limit.absolute = 50MB
EOF
    echo '[rabbitmq_management].' >"$dir/enabled_plugins"
  done
}

is_running() {
  # Without the private HOME the CLI would try to create a cookie there, fail, and leave an
  # erl_crash.dump in the current directory.
  [[ -d "$BASE/home" ]] && ctl "$1" -q ping >/dev/null 2>&1
}

start_server() {
  local i=$1
  env $(node_env "$i") RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}" \
    setsid "$SERVER" >"$BASE/${NAMES[$i]}/server.out" 2>&1 </dev/null &
}

await_node() {
  local i=$1 deadline=$((SECONDS + WAIT))
  # await_startup gives up at once while the Erlang VM has not registered yet: wait for a ping.
  until is_running "$i" || ((SECONDS >= deadline)); do sleep 1; done
  if ! ctl "$i" -q await_startup --timeout "$WAIT" >/dev/null 2>&1; then
    log "$(node_name "$i") did not start within ${WAIT} s; last lines of its log:"
    tail -n 30 "$BASE/${NAMES[$i]}/log/"*.log "$BASE/${NAMES[$i]}/server.out" 2>/dev/null >&2 || true
    return 1
  fi
}

running_nodes() {
  curl -fsS -u guest:guest "http://127.0.0.1:$(mgmt_port "$1")/api/nodes?columns=name,running" 2>/dev/null |
    grep -o '"running":true' | wc -l
}

await_api() {
  local i=$1 want=$2
  for _ in $(seq 1 "$WAIT"); do
    [[ "$(running_nodes "$i")" == "$want" ]] && return 0
    sleep 1
  done
  return 1
}

cmd_start() {
  if [[ -d "$BASE" ]] && is_running 0 && is_running 1 && is_running 2 && [[ "$(running_nodes 0)" == 3 ]]; then
    log "already running and clustered"
    return 0
  fi
  [[ -x "$SERVER" ]] || die "$SERVER not found: install the rabbitmq-server package"
  [[ $(id -u) -eq 0 ]] || die "must run as root"
  local started=$SECONDS
  prepare
  for i in 0 1 2; do
    is_running "$i" || start_server "$i"
  done
  for i in 0 1 2; do await_node "$i" || die "node $(node_name "$i") failed to start"; done
  log "3 nodes up after $((SECONDS - started)) s; joining them to $(node_name 0)"
  for i in 1 2; do
    if ! ctl "$i" -q cluster_status 2>/dev/null | grep -q "$(node_name 0)"; then
      ctl "$i" -q stop_app >/dev/null
      ctl "$i" -q join_cluster "$(node_name 0)" >/dev/null
      ctl "$i" -q start_app >/dev/null
    fi
  done
  await_api 0 3 || die "the management API on 127.0.0.1:$(mgmt_port 0) does not list 3 running nodes"
  log "cluster of 3 running after $((SECONDS - started)) s (AMQP 5681-5683, management 15681-15683)"
}

cmd_stop() {
  local started=$SECONDS
  if [[ -d "$BASE" ]]; then
    for i in 0 1 2; do
      (is_running "$i" && ctl "$i" -q stop >/dev/null 2>&1 || true) &
    done
    wait
  fi
  # Anything left of our nodes (a node that never finished booting) goes too; the machine's own
  # broker runs under another node name and is never matched.
  pkill -f 'topo-[abc]@localhost' 2>/dev/null || true
  rm -rf "$BASE"
  log "stopped after $((SECONDS - started)) s"
}

index_of() {
  [[ "${1:-}" =~ ^[123]$ ]] || die "node number must be 1, 2 or 3 (got '${1:-}')"
  echo $(($1 - 1))
}

cmd_stop_node() {
  local i
  i=$(index_of "${1:-}")
  ctl "$i" -q stop >/dev/null
  log "stopped $(node_name "$i")"
}

cmd_start_node() {
  local i
  i=$(index_of "${1:-}")
  if is_running "$i"; then
    log "$(node_name "$i") is already running"
    return 0
  fi
  start_server "$i"
  await_node "$i" || die "node $(node_name "$i") failed to start"
  # It kept its data, so it rejoins the cluster by itself.
  await_api 0 3 || await_api 1 3 || die "$(node_name "$i") did not rejoin the cluster"
  log "started $(node_name "$i"); 3 nodes running"
}

cmd_status() {
  for i in 0 1 2; do
    if is_running "$i"; then echo "$(node_name "$i") running"; else echo "$(node_name "$i") stopped"; fi
  done
}

cmd_env() {
  echo "export TOPO_CLUSTER_NODES=topo-a@localhost,topo-b@localhost,topo-c@localhost"
  echo "export TOPO_CLUSTER_AMQP_PORTS=5681,5682,5683"
  echo "export TOPO_CLUSTER_MGMT_PORTS=15681,15682,15683"
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  stop-node) cmd_stop_node "${2:-}" ;;
  start-node) cmd_start_node "${2:-}" ;;
  env) cmd_env ;;
  *) die "usage: $0 start|stop|status|stop-node N|start-node N|env" ;;
esac
