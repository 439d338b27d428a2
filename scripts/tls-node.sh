#!/usr/bin/env bash
# A single TLS-enabled RabbitMQ node of the installed package, loopback only, with a throw-away
# CA, for the TLS tests (test/integration/tls.test.ts). It never touches the machine's own broker
# (rabbit@localhost, 5672/15672, /etc/rabbitmq, epmd 4369): the node has its own name, ports,
# data, logs, config, plugins file, a private Erlang cookie in a private HOME, and a private epmd
# that this script starts.
#
# Usage: scripts/tls-node.sh start|stop|status|env|ctl ARGS...
#
#   node                  AMQP (plain)   AMQPS   management (HTTPS only)   distribution   epmd
#   topo-tls@localhost    5695           5696    15696                     25695          4395
#
# Environment (the defaults are the ports above):
#   TOPO_TLS_AMQP_PORT    plain AMQP port (default 5695)
#   TOPO_TLS_AMQPS_PORT   AMQPS port (default AMQP + 1)
#   TOPO_TLS_HTTPS_PORT   management HTTPS port (default AMQPS + 10000)
#   TOPO_TLS_DIST_PORT    distribution port (default AMQP + 20000)
#   TOPO_TLS_EPMD_PORT    the private epmd's port (default AMQP - 1300)
#   TOPO_TLS_DIR          state folder (default /tmp/topo-tls, or /tmp/topo-tls-PORT when
#                         TOPO_TLS_AMQP_PORT is not 5695)
#   TOPO_TLS_WAIT         seconds to wait for the node (default 90)
#
# Both TLS listeners verify a client certificate when one is presented (signed by the test CA),
# and do not require one. The state folder holds the certificates, data, logs, the ports the node
# was started with and the PIDs of the processes `start` started (the launcher, beam.smp and
# epmd); `stop` stops exactly those, after checking each still is the process started, and
# removes the folder. `start` first stops what a killed or failed earlier run left, stops what it
# started when it fails, and exits 75 without starting anything when a port is in use by a
# process it did not start. Needs root (the package's server script is run directly).
set -euo pipefail

log() { printf 'tls-node: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# shellcheck source=lib/test-broker.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/test-broker.sh"

WAIT="${TOPO_TLS_WAIT:-90}"
NODE=topo-tls@localhost
SERVER=/usr/lib/rabbitmq/bin/rabbitmq-server
CTL=/usr/lib/rabbitmq/bin/rabbitmqctl
HINT="TOPO_TLS_AMQP_PORT (and TOPO_TLS_AMQPS_PORT, TOPO_TLS_HTTPS_PORT, TOPO_TLS_DIST_PORT, TOPO_TLS_EPMD_PORT)"

# What the environment asks for.
AMQP_PORT="${TOPO_TLS_AMQP_PORT:-5695}"
require_port TOPO_TLS_AMQP_PORT "$AMQP_PORT"
AMQPS_PORT="${TOPO_TLS_AMQPS_PORT:-$((AMQP_PORT + 1))}"
require_port TOPO_TLS_AMQPS_PORT "$AMQPS_PORT"
HTTPS_PORT="${TOPO_TLS_HTTPS_PORT:-$((AMQPS_PORT + 10000))}"
DIST_PORT="${TOPO_TLS_DIST_PORT:-$((AMQP_PORT + 20000))}"
EPMD_PORT="${TOPO_TLS_EPMD_PORT:-$((AMQP_PORT - 1300))}"
require_port TOPO_TLS_HTTPS_PORT "$HTTPS_PORT"
require_port TOPO_TLS_DIST_PORT "$DIST_PORT"
require_port TOPO_TLS_EPMD_PORT "$EPMD_PORT"
if [[ $AMQP_PORT == 5695 ]]; then BASE_DEFAULT=/tmp/topo-tls; else BASE_DEFAULT=/tmp/topo-tls-$AMQP_PORT; fi
BASE="${TOPO_TLS_DIR:-$BASE_DEFAULT}"
CERTS="$BASE/certs"
WANTED="$AMQP_PORT $AMQPS_PORT $HTTPS_PORT $DIST_PORT"

# A running node keeps the ports it was started with, whatever the environment says now: every
# command but `start` talks to the node the state folder describes. A folder an older version of
# this script left (no `instance` file) had the default ports and the machine's epmd.
RECORDED=""
load_recorded() {
  if [[ -f $BASE/instance ]]; then
    read_ports "$BASE/instance" AMQP_PORT AMQPS_PORT HTTPS_PORT DIST_PORT EPMD_PORT
    RECORDED="$AMQP_PORT $AMQPS_PORT $HTTPS_PORT $DIST_PORT"
  elif [[ -f $BASE/rabbitmq-env.conf && -d $BASE/home ]]; then
    AMQP_PORT=5695 AMQPS_PORT=5696 HTTPS_PORT=15696 DIST_PORT=25695 EPMD_PORT=4369
    RECORDED="$AMQP_PORT $AMQPS_PORT $HTTPS_PORT $DIST_PORT"
  fi
}

# The environment the server and every rabbitmqctl call run with, in NODE_ENV: the same HOME
# (hence the same cookie) on both sides, the private epmd, and never the machine broker's env
# file, config or data. The distribution listener stays on loopback.
node_env() {
  NODE_ENV=(
    HOME="$BASE/home"
    RABBITMQ_NODENAME="$NODE"
    RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
    RABBITMQ_NODE_PORT="$AMQP_PORT"
    RABBITMQ_DIST_PORT="$DIST_PORT"
    RABBITMQ_MNESIA_BASE="$BASE/mnesia"
    RABBITMQ_LOG_BASE="$BASE/log"
    RABBITMQ_PID_FILE="$BASE/pid"
    RABBITMQ_CONFIG_FILE="$BASE/rabbitmq.conf"
    RABBITMQ_ENABLED_PLUGINS_FILE="$BASE/enabled_plugins"
    RABBITMQ_CONF_ENV_FILE="$BASE/rabbitmq-env.conf"
    ERL_EPMD_PORT="$EPMD_PORT"
    "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS=-kernel inet_dist_use_interface {127,0,0,1}"
  )
}

# Only while the node's epmd listens: without one, rabbitmqctl starts an `epmd -daemon` of its own
# on that port, which nobody records or stops.
ctl() {
  port_in_use "$EPMD_PORT" || return 1
  node_env
  env "${NODE_ENV[@]}" "$CTL" -n "$NODE" "$@"
}

# A graceful stop, with a bound on how long it may take.
ctl_stop() {
  port_in_use "$EPMD_PORT" || return 1
  node_env
  timeout 60 env "${NODE_ENV[@]}" "$CTL" -n "$NODE" -q stop >/dev/null 2>&1
}

is_running() {
  [[ -f "$BASE/home/.erlang.cookie" ]] && ctl -q ping >/dev/null 2>&1
}

# One lock per state folder: a start and a stop never interleave.
take_lock() {
  mkdir -p "$(dirname "$BASE")"
  exec 9>"$BASE.lock"
  flock -w 600 9 || die "timed out waiting for the lock $BASE.lock"
}

# openssl x509 -req reads extensions only from a file: one small file per kind of certificate.
ext_file() {
  local f="$CERTS/$1.ext"
  shift
  printf '%s\n' "$@" >"$f"
  echo "$f"
}

make_ca() {
  local name=$1 cn=$2
  openssl req -x509 -newkey rsa:2048 -nodes -days 7 -sha256 -subj "/O=topo-test/CN=$cn" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -keyout "$CERTS/$name.key" -out "$CERTS/$name.pem" 2>/dev/null
}

# sign NAME CN CA EXTFILE: a new key and a certificate for CN, signed by CA (CA.pem / CA.key).
sign() {
  local name=$1 cn=$2 ca=$3 ext=$4
  openssl req -new -newkey rsa:2048 -nodes -subj "/O=topo-test/CN=$cn" \
    -keyout "$CERTS/$name.key" -out "$CERTS/$name.csr" 2>/dev/null
  openssl x509 -req -in "$CERTS/$name.csr" -CA "$CERTS/$ca.pem" -CAkey "$CERTS/$ca.key" \
    -CAcreateserial -days 7 -sha256 -extfile "$ext" -out "$CERTS/$name.pem" 2>/dev/null
  rm -f "$CERTS/$name.csr"
}

# A throw-away CA that signs the node's certificate and a client certificate, and a second,
# unrelated CA (with a client certificate of its own) to prove that a wrong CA fails verification,
# on either side of the handshake.
make_certs() {
  [[ -f "$CERTS/other-client.pem" ]] && return 0
  command -v openssl >/dev/null || die "openssl not found"
  mkdir -p "$CERTS"
  make_ca ca "topo test CA"
  make_ca other-ca "unrelated CA"
  local server client
  # Clients check the name they dialled: both localhost and 127.0.0.1 must match.
  server=$(ext_file server "basicConstraints=CA:FALSE" "keyUsage=critical,digitalSignature,keyEncipherment" \
    "extendedKeyUsage=serverAuth" "subjectAltName=DNS:localhost,IP:127.0.0.1")
  client=$(ext_file client "basicConstraints=CA:FALSE" "keyUsage=critical,digitalSignature,keyEncipherment" \
    "extendedKeyUsage=clientAuth")
  sign server localhost ca "$server"
  sign client topo-client ca "$client"
  sign other-client topo-client other-ca "$client"
  chmod 600 "$CERTS"/*.key
}

prepare() {
  mkdir -p "$BASE/home" "$BASE/mnesia" "$BASE/log" "$BASE/pids"
  : >"$BASE/.topo-test-broker"
  {
    printf 'AMQP_PORT=%s\nAMQPS_PORT=%s\nHTTPS_PORT=%s\nDIST_PORT=%s\nEPMD_PORT=%s\n' \
      "$AMQP_PORT" "$AMQPS_PORT" "$HTTPS_PORT" "$DIST_PORT" "$EPMD_PORT"
    owner_lines
  } >"$BASE/instance"
  # A private cookie for the node and rabbitmqctl; never the machine broker's.
  head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' | head -c 32 >"$BASE/home/.erlang.cookie"
  chmod 600 "$BASE/home/.erlang.cookie"
  # An empty env file, so /etc/rabbitmq/rabbitmq-env.conf cannot rename the node.
  : >"$BASE/rabbitmq-env.conf"
  make_certs
  # verify_peer with fail_if_no_peer_cert = false: a client certificate is optional, but one that
  # is presented must be signed by the CA, so a test can prove topo really sends it.
  # Management gets only the HTTPS listener: with management.ssl set and no management.tcp, the
  # plugin starts no plain one (which would default to 15672, the machine broker's port).
  cat >"$BASE/rabbitmq.conf" <<EOF
listeners.tcp.1 = 127.0.0.1:$AMQP_PORT
listeners.ssl.1 = 127.0.0.1:$AMQPS_PORT
ssl_options.cacertfile = $CERTS/ca.pem
ssl_options.certfile = $CERTS/server.pem
ssl_options.keyfile = $CERTS/server.key
ssl_options.verify = verify_peer
ssl_options.fail_if_no_peer_cert = false
management.ssl.ip = 127.0.0.1
management.ssl.port = $HTTPS_PORT
management.ssl.cacertfile = $CERTS/ca.pem
management.ssl.certfile = $CERTS/server.pem
management.ssl.keyfile = $CERTS/server.key
management.ssl.verify = verify_peer
management.ssl.fail_if_no_peer_cert = false
# Test machines may have little free disk; never block publishers over it.
disk_free_limit.absolute = 50MB
EOF
  echo '[rabbitmq_management].' >"$BASE/enabled_plugins"
}

show_logs() {
  tail -n 30 "$BASE/log/"*.log "$BASE/server.out" 2>/dev/null >&2 || true
}

# Every process of ours still alive, as "label pid" lines: those this script recorded, and a node
# an older version of it started (told to write its pid file into our state folder; it recorded
# its launcher in launcher.pid).
own_pids() {
  local f pid
  for f in "$BASE"/pids/*; do
    [[ -f $f ]] || continue
    if pid=$(pid_live "$f"); then echo "${f##*/} $pid"; fi
  done
  if pid=$(legacy_pid "$BASE/pid"); then echo "pidfile $pid"; fi
  if pid=$(legacy_pid "$BASE/launcher.pid" "$BASE/pid"); then echo "launcher.pidfile $pid"; fi
  return 0
}

# Stop everything of ours: gracefully when the node answers, then by recorded PID.
stop_all() {
  local pid
  if pid_live "$BASE/pids/beam" >/dev/null || legacy_pid "$BASE/pid" >/dev/null; then
    ctl_stop || true
  fi
  stop_recorded "$BASE/pids/beam" 20
  stop_recorded "$BASE/pids/launcher" 5
  if pid=$(legacy_pid "$BASE/pid"); then kill_pid "$pid" 20 legacy_pid "$BASE/pid"; fi
  if pid=$(legacy_pid "$BASE/launcher.pid" "$BASE/pid"); then
    kill_pid "$pid" 5 legacy_pid "$BASE/launcher.pid" "$BASE/pid"
  fi
  stop_recorded "$BASE/pids/epmd" 5
}

# A start that fails part-way (or is interrupted) stops what it started: see on_start_failure.
on_start_exit() { on_start_failure stop_all; }

# A node in our state folder that another checkout's run still uses is not ours: its ports are
# taken. Exit 75 like any taken port, so that run's tests go on and ours skip.
refuse_foreign() {
  local user
  if [[ -n "$(own_pids)" ]] && user=$(foreign_user "$BASE/instance"); then
    log "port taken: 127.0.0.1:$AMQP_PORT, $AMQPS_PORT, $HTTPS_PORT and the node in $BASE are in use by $user; $1. Choose other ports with $HINT"
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
      die "a node from $BASE runs on other ports (AMQP, AMQPS, HTTPS, distribution: $RECORDED); stop it first, or set TOPO_TLS_DIR"
    fi
    if is_running && curl -fsS --cacert "$CERTS/ca.pem" -u guest:guest -o /dev/null "https://localhost:$HTTPS_PORT/api/overview" 2>/dev/null; then
      log "$NODE already running (AMQPS 127.0.0.1:$AMQPS_PORT, HTTPS 127.0.0.1:$HTTPS_PORT)"
      return 0
    fi
    log "an earlier run left processes in $BASE: stopping them first"
    stop_all
    [[ -z "$(own_pids)" ]] || die "processes of an earlier run are still alive: $(own_pids | tr '\n' ' ')"
  fi
  read -r AMQP_PORT AMQPS_PORT HTTPS_PORT DIST_PORT <<<"$WANTED"
  EPMD_PORT="${TOPO_TLS_EPMD_PORT:-$((AMQP_PORT - 1300))}"
  # Each run starts from an empty folder: no data, cookie, certificate or PID from an earlier one.
  safe_rm_state "$BASE"
  require_ports_free "$HINT" "$AMQP_PORT" "$AMQPS_PORT" "$HTTPS_PORT" "$DIST_PORT" "$EPMD_PORT"

  local started=$SECONDS deadline=$((SECONDS + WAIT)) epmd launcher
  exec 8>&2
  trap on_start_exit EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM HUP
  prepare
  epmd=$(find_epmd)
  ERL_EPMD_ADDRESS=127.0.0.1 setsid "$epmd" -port "$EPMD_PORT" </dev/null >"$BASE/epmd.out" 2>&1 8>&- 9>&- &
  pid_record "$BASE/pids/epmd" $! || die "epmd exited at once: $(cat "$BASE/epmd.out")"
  await_port "$EPMD_PORT" 10 || die "epmd does not listen on 127.0.0.1:$EPMD_PORT: $(cat "$BASE/epmd.out")"
  # setsid: the node outlives this script and is not killed with the caller's process group.
  node_env
  env "${NODE_ENV[@]}" setsid "$SERVER" >"$BASE/server.out" 2>&1 </dev/null 8>&- 9>&- &
  launcher=$!
  pid_record "$BASE/pids/launcher" "$launcher" || true # exited at once: the wait below says why
  await_child "$BASE/pids/beam" "$launcher" beam.smp || log "no beam.smp under the launcher (pid $launcher)"
  # await_startup gives up at once while the Erlang VM has not registered yet: wait for a ping.
  until is_running || ((SECONDS >= deadline)); do
    pid_live "$BASE/pids/launcher" >/dev/null || break
    sleep 0.5
  done
  if ! ctl -q await_startup --timeout "$WAIT" >/dev/null 2>&1; then
    log "$NODE did not start within ${WAIT} s; last lines of its log:"
    show_logs
    exit 1
  fi
  # The HTTPS listener comes up with the management plugin, just after the node reports ready.
  until curl -fsS --cacert "$CERTS/ca.pem" -u guest:guest -o /dev/null "https://localhost:$HTTPS_PORT/api/overview" 2>/dev/null; do
    if ((SECONDS >= deadline)); then
      log "$NODE is up but its management API does not answer on https://localhost:$HTTPS_PORT; last lines of its log:"
      show_logs
      exit 1
    fi
    sleep 0.5
  done
  trap - EXIT INT TERM HUP
  log "$NODE up after $((SECONDS - started)) s (AMQP $AMQP_PORT, AMQPS $AMQPS_PORT, HTTPS $HTTPS_PORT, state $BASE)"
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

cmd_status() {
  local user
  load_recorded
  if [[ -n "$(own_pids)" ]] && user=$(foreign_user "$BASE/instance"); then
    echo "$NODE stopped for this checkout: it is in use by $user"
    exit 3
  fi
  if is_running; then
    echo "$NODE running"
  else
    echo "$NODE stopped"
    exit 3
  fi
}

cmd_env() {
  load_recorded
  echo "export TOPO_TLS_DIR=$BASE"
  echo "export TOPO_TLS_NODE=$NODE"
  echo "export TOPO_TLS_CA=$CERTS/ca.pem"
  echo "export TOPO_TLS_CLIENT_CERT=$CERTS/client.pem"
  echo "export TOPO_TLS_CLIENT_KEY=$CERTS/client.key"
  echo "export TOPO_TLS_OTHER_CA=$CERTS/other-ca.pem"
  echo "export TOPO_TLS_OTHER_CLIENT_CERT=$CERTS/other-client.pem"
  echo "export TOPO_TLS_OTHER_CLIENT_KEY=$CERTS/other-client.key"
  echo "export TOPO_TLS_AMQP_PORT=$AMQP_PORT"
  echo "export TOPO_TLS_AMQPS_PORT=$AMQPS_PORT"
  echo "export TOPO_TLS_HTTPS_PORT=$HTTPS_PORT"
  echo "export TOPO_TLS_DIST_PORT=$DIST_PORT"
  echo "export TOPO_TLS_EPMD_PORT=$EPMD_PORT"
}

# rabbitmqctl against this node, with its cookie: scripts/tls-node.sh ctl add_user NAME PASSWORD
cmd_ctl() {
  load_recorded
  is_running || die "$NODE is not running; run $0 start"
  ctl "$@"
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  env) cmd_env ;;
  ctl) shift; cmd_ctl "$@" ;;
  *) die "usage: $0 start|stop|status|env|ctl ARGS..." ;;
esac
