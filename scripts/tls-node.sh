#!/usr/bin/env bash
# A single TLS-enabled RabbitMQ node of the installed package, loopback only, with a throw-away
# CA, for the TLS tests (test/integration/tls.test.ts). It never touches the machine's own broker
# (rabbit@localhost, 5672/15672, /etc/rabbitmq): the node has its own name, ports, data, logs,
# config, plugins file and a private Erlang cookie in a private HOME.
#
# Usage: scripts/tls-node.sh start|stop|status|env|ctl ARGS...
#
#   node                  AMQP (plain)   AMQPS   management (HTTPS only)   distribution
#   topo-tls@localhost    5695           5696    15696                     25695
#
# Both TLS listeners verify a client certificate when one is presented (signed by the test CA),
# and do not require one. State (certificates, data, logs) lives in ${TOPO_TLS_DIR:-/tmp/topo-tls};
# `stop` removes it. Needs root (the package's server script is run directly: no user switch).
set -euo pipefail

BASE="${TOPO_TLS_DIR:-/tmp/topo-tls}"
WAIT="${TOPO_TLS_WAIT:-90}"
NODE=topo-tls@localhost
AMQP_PORT=5695
AMQPS_PORT=5696
HTTPS_PORT=15696
DIST_PORT=25695
SERVER=/usr/lib/rabbitmq/bin/rabbitmq-server
CTL=/usr/lib/rabbitmq/bin/rabbitmqctl
CERTS="$BASE/certs"

log() { printf 'tls-node: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# The environment the server and every rabbitmqctl call run with: the same HOME (hence the same
# cookie) on both sides, and never the machine broker's env file, config or data.
node_env() {
  echo HOME="$BASE/home" \
    RABBITMQ_NODENAME="$NODE" \
    RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 \
    RABBITMQ_NODE_PORT="$AMQP_PORT" \
    RABBITMQ_DIST_PORT="$DIST_PORT" \
    RABBITMQ_MNESIA_BASE="$BASE/mnesia" \
    RABBITMQ_LOG_BASE="$BASE/log" \
    RABBITMQ_PID_FILE="$BASE/pid" \
    RABBITMQ_CONFIG_FILE="$BASE/rabbitmq.conf" \
    RABBITMQ_ENABLED_PLUGINS_FILE="$BASE/enabled_plugins" \
    RABBITMQ_CONF_ENV_FILE="$BASE/rabbitmq-env.conf"
}

ctl() {
  # The distribution listener stays on loopback, for rabbitmqctl as for the server.
  env $(node_env) RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}" \
    "$CTL" -n "$NODE" "$@"
}

is_running() {
  [[ -d "$BASE/home" ]] && ctl -q ping >/dev/null 2>&1
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
  mkdir -p "$BASE/home" "$BASE/mnesia" "$BASE/log"
  # A private cookie for the node and rabbitmqctl; never the machine broker's.
  if [[ ! -f "$BASE/home/.erlang.cookie" ]]; then
    head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' | head -c 32 >"$BASE/home/.erlang.cookie"
    chmod 600 "$BASE/home/.erlang.cookie"
  fi
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

cmd_start() {
  if is_running; then
    log "$NODE already running (AMQPS 127.0.0.1:$AMQPS_PORT, HTTPS 127.0.0.1:$HTTPS_PORT)"
    return 0
  fi
  [[ -x "$SERVER" ]] || die "$SERVER not found: install the rabbitmq-server package"
  [[ $(id -u) -eq 0 ]] || die "must run as root"
  local started=$SECONDS deadline=$((SECONDS + WAIT))
  prepare
  # setsid: the node outlives this script and is not killed with the caller's process group. It
  # also makes the node the leader of a process group of its own, which `stop` can end exactly
  # even if the node never got as far as writing its pid file.
  env $(node_env) RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}" \
    setsid "$SERVER" >"$BASE/server.out" 2>&1 </dev/null &
  echo $! >"$BASE/launcher.pid"
  # await_startup gives up at once while the Erlang VM has not registered yet: wait for a ping.
  until is_running || ((SECONDS >= deadline)); do sleep 0.5; done
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
  log "$NODE up after $((SECONDS - started)) s (AMQP $AMQP_PORT, AMQPS $AMQPS_PORT, HTTPS $HTTPS_PORT)"
}

cmd_stop() {
  local started=$SECONDS pid="" group=""
  [[ -f "$BASE/pid" ]] && pid=$(cat "$BASE/pid" 2>/dev/null || true)
  [[ -f "$BASE/launcher.pid" ]] && group=$(cat "$BASE/launcher.pid" 2>/dev/null || true)
  if is_running; then ctl -q stop >/dev/null 2>&1 || true; fi
  # A node that never finished booting does not answer rabbitmqctl: end it by its own pid and
  # process group, never by name (a pattern could match the machine's broker or another node).
  if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  if [[ -n "$group" ]] && kill -0 -- "-$group" 2>/dev/null; then
    kill -- "-$group" 2>/dev/null || true
    sleep 1
    kill -9 -- "-$group" 2>/dev/null || true
  fi
  rm -rf "$BASE"
  log "stopped after $((SECONDS - started)) s"
}

cmd_status() {
  if is_running; then
    echo "$NODE running"
  else
    echo "$NODE stopped"
    exit 3
  fi
}

cmd_env() {
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
}

# rabbitmqctl against this node, with its cookie: scripts/tls-node.sh ctl add_user NAME PASSWORD
cmd_ctl() {
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
