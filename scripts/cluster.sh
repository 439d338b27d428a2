#!/usr/bin/env bash
# A real 3-node RabbitMQ cluster of the installed package, on one machine, loopback only, for the
# mirroring tests. It never touches the machine's own broker (rabbit@localhost, 5672/15672,
# /etc/rabbitmq, epmd 4369): each node has its own name, ports, data, logs, config and plugins
# file, the three share a private Erlang cookie through a private HOME, and they register with a
# private epmd that this script starts.
#
# Usage: scripts/cluster.sh start|stop|status|stop-node N|start-node N|ctl N ARGS...|env   (N = 1, 2 or 3)
#
#   node               AMQP   management   distribution
#   topo-a@localhost   5681   15681        25681          (epmd 4381 for all three)
#   topo-b@localhost   5682   15682        25682
#   topo-c@localhost   5683   15683        25683
#
# Environment (the defaults are the ports above):
#   TOPO_CLUSTER_AMQP_PORT   first node's AMQP port; the others take the next two (default 5681)
#   TOPO_CLUSTER_MGMT_PORT   first management port (default AMQP + 10000)
#   TOPO_CLUSTER_DIST_PORT   first distribution port (default AMQP + 20000)
#   TOPO_CLUSTER_EPMD_PORT   the private epmd's port (default AMQP - 1300)
#   TOPO_CLUSTER_DIR         state folder (default /tmp/topo-cluster, or /tmp/topo-cluster-PORT
#                            when TOPO_CLUSTER_AMQP_PORT is not 5681)
#   TOPO_CLUSTER_WAIT        seconds to wait for a node (default 120)
#
# The state folder holds the nodes' data and logs, the ports they were started with and the PIDs
# of every process `start` started (each node's launcher and beam.smp, and epmd). `stop` stops
# exactly those (after checking each PID still is the process started) and removes the folder;
# `start` first stops what a killed or failed earlier run left. `start` exits 75 without starting
# anything when a port is in use by a process it did not start. A failed start stops what it
# started. Needs root (the package's server script is run directly, as root, so no user switch).
set -euo pipefail

log() { printf 'cluster: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# shellcheck source=lib/test-broker.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/test-broker.sh"

WAIT="${TOPO_CLUSTER_WAIT:-120}"
NAMES=(a b c)
SERVER=/usr/lib/rabbitmq/bin/rabbitmq-server
CTL=/usr/lib/rabbitmq/bin/rabbitmqctl
HINT="TOPO_CLUSTER_AMQP_PORT (and TOPO_CLUSTER_MGMT_PORT, TOPO_CLUSTER_DIST_PORT, TOPO_CLUSTER_EPMD_PORT)"

# What the environment asks for.
AMQP_PORT="${TOPO_CLUSTER_AMQP_PORT:-5681}"
require_port TOPO_CLUSTER_AMQP_PORT "$AMQP_PORT"
MGMT_PORT="${TOPO_CLUSTER_MGMT_PORT:-$((AMQP_PORT + 10000))}"
DIST_PORT="${TOPO_CLUSTER_DIST_PORT:-$((AMQP_PORT + 20000))}"
EPMD_PORT="${TOPO_CLUSTER_EPMD_PORT:-$((AMQP_PORT - 1300))}"
require_port TOPO_CLUSTER_MGMT_PORT "$MGMT_PORT"
require_port TOPO_CLUSTER_DIST_PORT "$DIST_PORT"
require_port TOPO_CLUSTER_EPMD_PORT "$EPMD_PORT"
if [[ $AMQP_PORT == 5681 ]]; then BASE_DEFAULT=/tmp/topo-cluster; else BASE_DEFAULT=/tmp/topo-cluster-$AMQP_PORT; fi
BASE="${TOPO_CLUSTER_DIR:-$BASE_DEFAULT}"
WANTED="$AMQP_PORT $MGMT_PORT $DIST_PORT"

# A running cluster keeps the ports it was started with, whatever the environment says now: every
# command but `start` talks to the cluster the state folder describes. A folder an older version
# of this script left (no `instance` file) had the default ports and the machine's epmd.
RECORDED=""
load_recorded() {
  if [[ -f $BASE/instance ]]; then
    read_ports "$BASE/instance" AMQP_PORT MGMT_PORT DIST_PORT EPMD_PORT
    RECORDED="$AMQP_PORT $MGMT_PORT $DIST_PORT"
  elif [[ -f $BASE/rabbitmq-env.conf && -d $BASE/home ]]; then
    AMQP_PORT=5681 MGMT_PORT=15681 DIST_PORT=25681 EPMD_PORT=4369
    RECORDED="$AMQP_PORT $MGMT_PORT $DIST_PORT"
  fi
}

node_name() { echo "topo-${NAMES[$1]}@localhost"; }
amqp_port() { echo $((AMQP_PORT + $1)); }
mgmt_port() { echo $((MGMT_PORT + $1)); }
dist_port() { echo $((DIST_PORT + $1)); }

# The environment every command about node $1 runs with, in NODE_ENV.
node_env() {
  local i=$1 dir="$BASE/${NAMES[$1]}"
  NODE_ENV=(
    HOME="$BASE/home"
    RABBITMQ_NODENAME="$(node_name "$i")"
    RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
    RABBITMQ_NODE_PORT="$(amqp_port "$i")"
    RABBITMQ_DIST_PORT="$(dist_port "$i")"
    RABBITMQ_MNESIA_BASE="$dir/mnesia"
    RABBITMQ_LOG_BASE="$dir/log"
    RABBITMQ_PID_FILE="$dir/pid"
    RABBITMQ_CONFIG_FILE="$dir/rabbitmq.conf"
    RABBITMQ_ADVANCED_CONFIG_FILE="$dir/advanced.config"
    RABBITMQ_ENABLED_PLUGINS_FILE="$dir/enabled_plugins"
    RABBITMQ_CONF_ENV_FILE="$BASE/rabbitmq-env.conf"
    ERL_EPMD_PORT="$EPMD_PORT"
    "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS=-kernel inet_dist_use_interface {127,0,0,1}"
  )
}

# rabbitmqctl about node $1, as a command line in CTL_ARGV (so `timeout` can run it too).
ctl_argv() {
  node_env "$1"
  CTL_ARGV=(env "${NODE_ENV[@]}" "$CTL" -n "$(node_name "$1")")
}

# Only while the nodes' epmd listens: without one, rabbitmqctl starts an `epmd -daemon` of its own
# on that port, which nobody records or stops.
ctl() {
  port_in_use "$EPMD_PORT" || return 1
  ctl_argv "$1"
  shift
  "${CTL_ARGV[@]}" "$@"
}

# A graceful stop of node $1, with a bound on how long it may take.
ctl_stop() {
  port_in_use "$EPMD_PORT" || return 1
  ctl_argv "$1"
  timeout 60 "${CTL_ARGV[@]}" -q stop >/dev/null 2>&1
}

# One lock per state folder: a start, a stop and a node restart never interleave.
take_lock() {
  mkdir -p "$(dirname "$BASE")"
  exec 9>"$BASE.lock"
  flock -w 600 9 || die "timed out waiting for the lock $BASE.lock"
}

prepare() {
  mkdir -p "$BASE/home" "$BASE/pids"
  : >"$BASE/.topo-test-broker"
  {
    printf 'AMQP_PORT=%s\nMGMT_PORT=%s\nDIST_PORT=%s\nEPMD_PORT=%s\n' "$AMQP_PORT" "$MGMT_PORT" "$DIST_PORT" "$EPMD_PORT"
    owner_lines
  } >"$BASE/instance"
  # One private cookie for the three nodes and for rabbitmqctl; never the machine broker's.
  head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' | head -c 32 >"$BASE/home/.erlang.cookie"
  chmod 600 "$BASE/home/.erlang.cookie"
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

# Every process of ours still alive, as "label pid" lines: those this script recorded, and nodes an
# older version of it started (they were told to write their pid file into our state folder).
own_pids() {
  local f pid n
  for f in "$BASE"/pids/*; do
    [[ -f $f ]] || continue
    if pid=$(pid_live "$f"); then echo "${f##*/} $pid"; fi
  done
  for n in "${NAMES[@]}"; do
    if pid=$(legacy_pid "$BASE/$n/pid"); then echo "$n.pidfile $pid"; fi
  done
  return 0
}

node_alive() {
  local n=${NAMES[$1]}
  pid_live "$BASE/pids/$n.beam" >/dev/null || legacy_pid "$BASE/$n/pid" >/dev/null
}

is_running() {
  # Without the private HOME the CLI would try to create a cookie there, fail, and leave an
  # erl_crash.dump in the current directory.
  [[ -f "$BASE/home/.erlang.cookie" ]] && ctl "$1" -q ping >/dev/null 2>&1
}

start_epmd() {
  local epmd
  epmd=$(find_epmd)
  ERL_EPMD_ADDRESS=127.0.0.1 setsid "$epmd" -port "$EPMD_PORT" </dev/null >"$BASE/epmd.out" 2>&1 8>&- 9>&- &
  pid_record "$BASE/pids/epmd" $! || die "epmd exited at once: $(cat "$BASE/epmd.out")"
  await_port "$EPMD_PORT" 10 || die "epmd does not listen on 127.0.0.1:$EPMD_PORT: $(cat "$BASE/epmd.out")"
}

# Start node $1 and record its launcher (rabbitmq-server's shell) and the beam.smp it runs.
start_server() {
  local i=$1 n=${NAMES[$1]} launcher
  node_env "$i"
  # setsid: the node outlives this script and is not killed with the caller's process group.
  env "${NODE_ENV[@]}" setsid "$SERVER" >"$BASE/$n/server.out" 2>&1 </dev/null 8>&- 9>&- &
  launcher=$!
  pid_record "$BASE/pids/$n.launcher" "$launcher" || true # exited at once: await_node says why
  await_child "$BASE/pids/$n.beam" "$launcher" beam.smp || log "no beam.smp under $(node_name "$i")'s launcher (pid $launcher)"
}

stop_node_pids() {
  local n=${NAMES[$1]} pid
  stop_recorded "$BASE/pids/$n.beam" 20
  stop_recorded "$BASE/pids/$n.launcher" 5
  if pid=$(legacy_pid "$BASE/$n/pid"); then kill_pid "$pid" 20 legacy_pid "$BASE/$n/pid"; fi
}

# Stop everything of ours: gracefully where a node answers, then by recorded PID.
stop_all() {
  local i waits=()
  if [[ -f $BASE/home/.erlang.cookie ]]; then
    for i in 0 1 2; do
      if node_alive "$i"; then
        (ctl_stop "$i" || true) &
        waits+=($!)
      fi
    done
    # Only these: the nodes and epmd are this shell's children too during a failed start.
    ((${#waits[@]} == 0)) || wait "${waits[@]}" || true
  fi
  for i in 0 1 2; do stop_node_pids "$i"; done
  stop_recorded "$BASE/pids/epmd" 5
}

await_node() {
  local i=$1 deadline=$((SECONDS + WAIT))
  # await_startup gives up at once while the Erlang VM has not registered yet: wait for a ping.
  until is_running "$i" || ((SECONDS >= deadline)); do
    node_alive "$i" || pid_live "$BASE/pids/${NAMES[$i]}.launcher" >/dev/null || break
    sleep 1
  done
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

all_running() {
  is_running 0 && is_running 1 && is_running 2 && [[ "$(running_nodes 0)" == 3 ]]
}

# A start that fails part-way (or is interrupted) stops what it started: see on_start_failure.
on_start_exit() { on_start_failure stop_all; }

# A cluster in our state folder that another checkout's run still uses is not ours: its ports are
# taken. Exit 75 like any taken port, so that run's tests go on and ours skip.
refuse_foreign() {
  local user
  if [[ -n "$(own_pids)" ]] && user=$(foreign_user "$BASE/instance"); then
    log "port taken: 127.0.0.1:$(amqp_port 0)-$(amqp_port 2) and the cluster in $BASE are in use by $user; $1. Choose other ports with $HINT"
    exit "$EXIT_PORT_TAKEN"
  fi
}

cmd_start() {
  [[ -x "$SERVER" ]] || die "$SERVER not found: install the rabbitmq-server package"
  [[ $(id -u) -eq 0 ]] || die "must run as root"
  take_lock
  load_recorded
  refuse_foreign "nothing started"
  if [[ -n "$(own_pids)" ]]; then
    if [[ $RECORDED != "$WANTED" ]]; then
      die "a cluster from $BASE runs on other ports (AMQP, management, distribution: $RECORDED); stop it first, or set TOPO_CLUSTER_DIR"
    fi
    if all_running; then
      log "already running and clustered (AMQP $(amqp_port 0)-$(amqp_port 2), management $(mgmt_port 0)-$(mgmt_port 2))"
      return 0
    fi
    log "an earlier run left processes in $BASE: stopping them first"
    stop_all
    [[ -z "$(own_pids)" ]] || die "processes of an earlier run are still alive: $(own_pids | tr '\n' ' ')"
  fi
  read -r AMQP_PORT MGMT_PORT DIST_PORT <<<"$WANTED"
  EPMD_PORT="${TOPO_CLUSTER_EPMD_PORT:-$((AMQP_PORT - 1300))}"
  # Each run starts from an empty folder: no data, cookie or PID from an earlier one.
  safe_rm_state "$BASE"
  local ports=("$EPMD_PORT") i
  for i in 0 1 2; do ports+=("$(amqp_port "$i")" "$(mgmt_port "$i")" "$(dist_port "$i")"); done
  require_ports_free "$HINT" "${ports[@]}"

  local started=$SECONDS
  exec 8>&2
  trap on_start_exit EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM HUP
  prepare
  start_epmd
  for i in 0 1 2; do start_server "$i"; done
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
  trap - EXIT INT TERM HUP
  log "cluster of 3 running after $((SECONDS - started)) s (AMQP $(amqp_port 0)-$(amqp_port 2), management $(mgmt_port 0)-$(mgmt_port 2), state $BASE)"
}

cmd_stop() {
  local started=$SECONDS left
  take_lock
  load_recorded
  refuse_foreign "not stopping it"
  stop_all
  left=$(own_pids)
  [[ -z $left ]] || die "still alive, state kept in $BASE: $(tr '\n' ' ' <<<"$left")"
  safe_rm_state "$BASE"
  log "stopped after $((SECONDS - started)) s"
}

index_of() {
  [[ "${1:-}" =~ ^[123]$ ]] || die "node number must be 1, 2 or 3 (got '${1:-}')"
  echo $(($1 - 1))
}

# Node $1 (1, 2 or 3) of the cluster this script started, as its index in NODE_INDEX, under the
# script's lock. $2 says what is not done when the cluster is someone else's; $3 is added to the
# words when there is no cluster.
recorded_node() {
  NODE_INDEX=$(index_of "${1:-}")
  take_lock
  load_recorded
  refuse_foreign "$2"
  [[ -n $RECORDED ]] || die "no cluster in $BASE${3:-}"
}

cmd_stop_node() {
  recorded_node "${1:-}" "not stopping a node of it"
  local i=$NODE_INDEX
  ctl_stop "$i" || log "rabbitmqctl stop $(node_name "$i") failed; stopping it by its PIDs"
  stop_node_pids "$i"
  log "stopped $(node_name "$i")"
}

cmd_start_node() {
  recorded_node "${1:-}" "not starting a node of it" "; run $0 start"
  local i=$NODE_INDEX
  if is_running "$i"; then
    log "$(node_name "$i") is already running"
    return 0
  fi
  stop_node_pids "$i" # what is left of it, if anything
  start_server "$i"
  if ! await_node "$i"; then
    stop_node_pids "$i"
    die "node $(node_name "$i") failed to start"
  fi
  # It kept its data, so it rejoins the cluster by itself.
  await_api 0 3 || await_api 1 3 || die "$(node_name "$i") did not rejoin the cluster"
  log "started $(node_name "$i"); 3 nodes running"
}

# Exit 0 only when all three nodes of this state folder answer, and they are not another
# checkout's while its run still goes on.
cmd_status() {
  local i up=0 user
  load_recorded
  if [[ -n "$(own_pids)" ]] && user=$(foreign_user "$BASE/instance"); then
    echo "stopped for this checkout: the cluster in $BASE is in use by $user"
    return 3
  fi
  for i in 0 1 2; do
    if is_running "$i"; then
      echo "$(node_name "$i") running"
      up=$((up + 1))
    else
      echo "$(node_name "$i") stopped"
    fi
  done
  ((up == 3)) || return 3
}

cmd_env() {
  load_recorded
  echo "export TOPO_CLUSTER_DIR=$BASE"
  echo "export TOPO_CLUSTER_NODES=$(node_name 0),$(node_name 1),$(node_name 2)"
  echo "export TOPO_CLUSTER_AMQP_PORTS=$(amqp_port 0),$(amqp_port 1),$(amqp_port 2)"
  echo "export TOPO_CLUSTER_MGMT_PORTS=$(mgmt_port 0),$(mgmt_port 1),$(mgmt_port 2)"
  echo "export TOPO_CLUSTER_EPMD_PORT=$EPMD_PORT"
}

# rabbitmqctl against node N of the running cluster, with its private cookie: `ctl N ARGS...`.
cmd_ctl() {
  recorded_node "${1:-}" "not running rabbitmqctl against it"
  shift
  ctl "$NODE_INDEX" "$@"
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  stop-node) cmd_stop_node "${2:-}" ;;
  start-node) cmd_start_node "${2:-}" ;;
  env) cmd_env ;;
  ctl) shift; cmd_ctl "$@" ;;
  *) die "usage: $0 start|stop|status|stop-node N|start-node N|ctl N ARGS...|env" ;;
esac
