#!/usr/bin/env bash
# Provide a real RabbitMQ 4.0.x broker for integration tests, without Docker.
#
# Usage: scripts/rabbitmq4.sh start|stop|status|env
#
# The broker comes from Debian trixie's rabbitmq-server package (4.0.x, Erlang 27),
# installed into a minbase chroot that is cached outside the repo so only the
# first run pays for debootstrap + apt. The node runs as the chroot's `rabbitmq`
# user on its own ports and its own epmd, so it never touches the host's
# RabbitMQ 3.10 (5672/15672/25672, epmd 4369).
#
#   AMQP        127.0.0.1:5690     management  127.0.0.1:15690
#   dist        25690              epmd        4390 (127.0.0.1 only)
#
# Environment:
#   TOPO_RMQ4_ROOT    chroot location (default /var/cache/topo/rabbitmq4-trixie)
#   TOPO_RMQ4_MIRROR  Debian mirror (default: read from this host's apt sources)
#   TOPO_RMQ4_WAIT    seconds to wait for the node to answer (default 60)
#   TOPO_RMQ4_EXTRA_CONF  lines appended to the node's rabbitmq.conf for this start
#
# Needs root (chroot, mount). Safe to run without a TTY (CI=true).
set -euo pipefail

ROOT_DEFAULT=/var/cache/topo/rabbitmq4-trixie
# Canonical path: it is compared against /proc/PID/root and /proc/mounts.
ROOT="$(realpath -m "${TOPO_RMQ4_ROOT:-$ROOT_DEFAULT}")"
MARKER="$ROOT/.topo-rabbitmq4-complete"
WAIT_SECS="${TOPO_RMQ4_WAIT:-60}"
SUITE=trixie

NODENAME=rabbit4@localhost
AMQP_PORT=5690
MGMT_PORT=15690
DIST_PORT=25690
EPMD_PORT=4390

# Paths *inside* the chroot. RUN_DIR is wiped on every start so each test run
# gets a fresh broker (empty mnesia/khepri, only guest/guest and vhost "/").
RUN_DIR=/var/lib/topo-rmq4
CONF_DIR=/etc/topo-rmq4
RMQ_HOME=/var/lib/rabbitmq   # the package's home for `rabbitmq`; holds the erlang cookie

AMQP_URL="amqp://guest:guest@127.0.0.1:${AMQP_PORT}"
MGMT_URL="http://guest:guest@127.0.0.1:${MGMT_PORT}"

export DEBIAN_FRONTEND=noninteractive
# Turn Ctrl-C / CI cancellation into a normal exit so the EXIT traps below
# (which kill the node and unmount) also run then.
trap 'exit 130' INT
trap 'exit 143' TERM HUP

log() { printf 'rabbitmq4: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

require_root() {
  [[ $(id -u) -eq 0 ]] || die "must run as root (needs chroot and mount)"
}

# Serialise concurrent invocations (parallel CI jobs, start racing stop).
# fd 9 is closed for the detached broker (see start_node) so it never holds it.
take_lock() {
  mkdir -p "$(dirname "$ROOT")"
  exec 9>"${ROOT}.lock"
  flock -w 600 9 || die "timed out waiting for lock ${ROOT}.lock"
}

# Mirror: reuse whatever Debian mirror this host's apt already points at,
# because on locked-down machines that is the only one reachable.
detect_mirror() {
  if [[ -n ${TOPO_RMQ4_MIRROR:-} ]]; then echo "$TOPO_RMQ4_MIRROR"; return; fi
  local uri
  uri="$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null \
    | grep -v '^[[:space:]]*#' \
    | grep -oE 'https?://[^[:space:]]+/debian/?' \
    | grep -v -- '-security' | head -n1 || true)"
  echo "${uri:-http://deb.debian.org/debian}"
}

# Environment for every rabbitmq command inside the chroot. `env -i` keeps the
# host's environment (CI vars, RABBITMQ_* for the host broker, locales) out.
chroot_env() {
  printf '%s\n' \
    env -i \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    HOME="$RMQ_HOME" \
    LANG=C.UTF-8 LC_ALL=C.UTF-8 \
    RABBITMQ_NODENAME="$NODENAME" \
    RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 \
    RABBITMQ_NODE_PORT="$AMQP_PORT" \
    RABBITMQ_DIST_PORT="$DIST_PORT" \
    ERL_EPMD_PORT="$EPMD_PORT" \
    ERL_EPMD_ADDRESS=127.0.0.1 \
    "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS=-kernel inet_dist_use_interface {127,0,0,1}" \
    RABBITMQ_CONF_ENV_FILE="$CONF_DIR/rabbitmq-env.conf" \
    RABBITMQ_CONFIG_FILE="$CONF_DIR/rabbitmq.conf" \
    RABBITMQ_ENABLED_PLUGINS_FILE="$CONF_DIR/enabled_plugins" \
    RABBITMQ_MNESIA_BASE="$RUN_DIR/mnesia" \
    RABBITMQ_LOG_BASE="$RUN_DIR/log" \
    RABBITMQ_PID_FILE="$RUN_DIR/rabbit4.pid"
}

# PIDs whose root directory is the chroot: beam.smp, epmd, erl_child_setup,
# inet_gethost... Matching on /proc/PID/root (not process names) is what keeps
# the host's own beam/epmd safe.
chroot_pids() {
  local p
  # -ef stats /proc/PID/root (the process's root dir) without forking per pid.
  for p in /proc/[0-9]*; do
    if [[ $p/root -ef $ROOT ]]; then echo "${p#/proc/}"; fi
  done
}

# Mount points at or below the chroot, deepest first so nested ones go first.
chroot_mounts() {
  awk -v root="$ROOT" '$2 == root || index($2, root "/") == 1 { print $2 }' /proc/mounts | sort -r
}

mount_proc() {
  if ! mountpoint -q "$ROOT/proc"; then
    mount -t proc proc "$ROOT/proc"
  fi
}

unmount_all() {
  local m
  while read -r m; do
    [[ -n $m ]] || continue
    umount "$m" 2>/dev/null || umount -l "$m" || log "warning: could not unmount $m"
  done < <(chroot_mounts)
}

kill_chroot_pids() {
  local pids i
  pids="$(chroot_pids)"
  [[ -n $pids ]] || return 0
  # shellcheck disable=SC2086
  kill -TERM $pids 2>/dev/null || true
  for ((i = 0; i < 20; i++)); do
    pids="$(chroot_pids)"
    [[ -n $pids ]] || return 0
    sleep 0.5
  done
  log "processes still alive after SIGTERM, sending SIGKILL: $pids"
  # shellcheck disable=SC2086
  kill -KILL $pids 2>/dev/null || true
  sleep 0.5
}

# Prints the broker version if the management API answers, else fails.
api_version() {
  local body
  body="$(curl -sS --max-time 3 -u guest:guest "http://127.0.0.1:${MGMT_PORT}/api/overview" 2>/dev/null)" || return 1
  # Avoid a jq dependency: pull "rabbitmq_version":"x.y.z" out with sed.
  sed -n 's/.*"rabbitmq_version":"\([^"]*\)".*/\1/p' <<<"$body" | grep . || return 1
}

# ---------------------------------------------------------------- build

build_chroot() {
  if [[ -f $MARKER ]]; then return 0; fi
  local mirror start
  mirror="$(detect_mirror)"
  start=$SECONDS
  log "building $SUITE chroot in $ROOT from $mirror (first run only, ~1.5 min, ~350 MB)"

  # A previous build was interrupted: never reuse a half-installed tree.
  if [[ -e $ROOT ]]; then
    kill_chroot_pids
    unmount_all
    if [[ -n "$(chroot_mounts)" ]]; then die "mounts remain under $ROOT; refusing to delete it"; fi
    # --one-file-system: belt and braces against deleting through a mount.
    rm -rf --one-file-system "$ROOT"
  fi

  if ! command -v debootstrap >/dev/null; then
    log "installing debootstrap on the host"
    # Some third-party apt sources may be unreachable; the Debian ones suffice.
    apt-get update -qq || log "warning: apt-get update reported errors; continuing"
    apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
  fi

  # Unmount on any exit during the build (failure, Ctrl-C, CI cancel).
  trap 'kill_chroot_pids; unmount_all' EXIT
  mkdir -p "$ROOT"
  debootstrap --variant=minbase "$SUITE" "$ROOT" "$mirror" >"${ROOT}.debootstrap.log" 2>&1 \
    || { tail -n 30 "${ROOT}.debootstrap.log" >&2; die "debootstrap failed (log: ${ROOT}.debootstrap.log)"; }

  # Keep the package's maintainer scripts from starting a broker on 5672.
  printf '#!/bin/sh\nexit 101\n' >"$ROOT/usr/sbin/policy-rc.d"
  chmod +x "$ROOT/usr/sbin/policy-rc.d"
  cp -L /etc/resolv.conf "$ROOT/etc/resolv.conf" 2>/dev/null || true

  mount_proc
  chroot "$ROOT" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8 \
    sh -c 'apt-get update -qq && apt-get install -y -qq --no-install-recommends rabbitmq-server curl ca-certificates && apt-get clean' \
    >"${ROOT}.apt.log" 2>&1 \
    || { tail -n 30 "${ROOT}.apt.log" >&2; die "apt-get install rabbitmq-server in chroot failed (log: ${ROOT}.apt.log)"; }
  # Postinst may have spawned an epmd despite policy-rc.d; clean up before marking.
  kill_chroot_pids
  unmount_all
  trap - EXIT

  local version
  version="$(chroot "$ROOT" dpkg-query -W -f='${Version}' rabbitmq-server)"
  echo "rabbitmq-server $version built $(date -u +%FT%TZ)" >"$MARKER"
  log "chroot ready: rabbitmq-server $version ($((SECONDS - start)) s)"
}

# Static config, rewritten on every start so edits here take effect.
write_config() {
  mkdir -p "$ROOT$CONF_DIR"
  # Our own env file instead of the package's /etc/rabbitmq/rabbitmq-env.conf.
  : >"$ROOT$CONF_DIR/rabbitmq-env.conf"
  cat >"$ROOT$CONF_DIR/rabbitmq.conf" <<EOF
# Written by scripts/rabbitmq4.sh. guest/guest is allowed from loopback by default.
listeners.tcp.1 = 127.0.0.1:${AMQP_PORT}
management.tcp.ip = 127.0.0.1
management.tcp.port = ${MGMT_PORT}
# Test machines often have little free disk; don't block publishers over it.
disk_free_limit.absolute = 50MB
EOF
  # Extra rabbitmq.conf lines for one start, e.g. a test that denies a deprecated feature.
  if [[ -n "${TOPO_RMQ4_EXTRA_CONF:-}" ]]; then
    printf '%s\n' "$TOPO_RMQ4_EXTRA_CONF" >>"$ROOT$CONF_DIR/rabbitmq.conf"
  fi
  echo '[rabbitmq_management].' >"$ROOT$CONF_DIR/enabled_plugins"
  chmod 0644 "$ROOT$CONF_DIR"/*
}

# ---------------------------------------------------------------- commands

cmd_start() {
  require_root
  take_lock
  local version
  if version="$(api_version)"; then
    case $version in
      4.*) log "already running: RabbitMQ $version on :$AMQP_PORT/:$MGMT_PORT"; return 0 ;;
      *) die "port $MGMT_PORT answers with RabbitMQ $version, not 4.x; something else owns it" ;;
    esac
  fi

  build_chroot
  # Leftovers from a crashed/failed earlier start would hold ports and mounts.
  if [[ -n "$(chroot_pids)" ]]; then
    log "cleaning up a stale node from an earlier run"
    stop_node
  fi

  write_config
  # Fresh node data each start: tests expect an empty broker.
  rm -rf --one-file-system "${ROOT:?}$RUN_DIR"
  mkdir -p "$ROOT$RUN_DIR/log"
  chroot "$ROOT" chown -R rabbitmq:rabbitmq "$RUN_DIR"
  mount_proc

  # Any failure from here on must leave no process and no mount behind.
  trap 'rc=$?; if (( rc != 0 )); then stop_node; fi' EXIT

  local console="$ROOT$RUN_DIR/log/console.log"
  local -a envv
  mapfile -t envv < <(chroot_env)
  # setsid + nohup: detach from this shell/CI step so the node outlives it;
  # stdin from /dev/null and fd 9 (the lock) closed so nothing is inherited.
  setsid nohup chroot --userspec=rabbitmq:rabbitmq "$ROOT" "${envv[@]}" \
    /usr/lib/rabbitmq/bin/rabbitmq-server </dev/null >"$console" 2>&1 9>&- &
  local launcher=$!
  log "starting $NODENAME (pid $launcher), waiting up to ${WAIT_SECS}s"

  local deadline=$((SECONDS + WAIT_SECS))
  while ((SECONDS < deadline)); do
    if version="$(api_version)"; then
      case $version in
        4.*)
          trap - EXIT
          log "RabbitMQ $version ready on $AMQP_URL (management $MGMT_URL)"
          return 0 ;;
        *) log "unexpected version $version"; break ;;
      esac
    fi
    if ! kill -0 "$launcher" 2>/dev/null; then
      log "node process exited early"
      break
    fi
    sleep 1
  done

  log "node did not become ready; last lines of its logs:"
  local f
  for f in "$console" "$ROOT$RUN_DIR/log/${NODENAME}.log"; do
    if [[ -s $f ]]; then echo "--- $f" >&2; tail -n 40 "$f" >&2; fi
  done
  exit 1   # EXIT trap stops the node and unmounts
}

# Stop without taking the lock (callers hold it). Never fails.
stop_node() {
  if [[ -n "$(chroot_pids)" ]] && [[ -x $ROOT/usr/lib/rabbitmq/bin/rabbitmqctl ]]; then
    # Graceful first so quorum queues/khepri shut down cleanly. Needs /proc.
    mount_proc 2>/dev/null || true
    local -a envv
    mapfile -t envv < <(chroot_env)
    timeout 30 chroot --userspec=rabbitmq:rabbitmq "$ROOT" "${envv[@]}" \
      /usr/lib/rabbitmq/bin/rabbitmqctl -q stop </dev/null >/dev/null 2>&1 \
      || log "rabbitmqctl stop failed or timed out; killing processes"
  fi
  # rabbitmqctl stop leaves the chroot's epmd (and maybe more) running.
  kill_chroot_pids
  unmount_all
}

cmd_stop() {
  require_root
  take_lock
  local start=$SECONDS
  stop_node
  if [[ -n "$(chroot_pids)" || -n "$(chroot_mounts)" ]]; then
    die "processes or mounts remain under $ROOT"
  fi
  log "stopped ($((SECONDS - start)) s); cache kept at $ROOT"
}

cmd_status() {
  local version
  if version="$(api_version)"; then
    echo "running: RabbitMQ $version ($AMQP_URL, management $MGMT_URL)"
    return 0
  fi
  if [[ $(id -u) -eq 0 && -n "$(chroot_pids)" ]]; then
    echo "not ready: processes exist in $ROOT but the management API does not answer"
  else
    echo "stopped"
  fi
  if [[ -f $MARKER ]]; then echo "cache: $(cat "$MARKER") at $ROOT"; else echo "cache: not built ($ROOT)"; fi
  return 3   # LSB "not running"
}

cmd_env() {
  echo "export RABBITMQ4_URL=$AMQP_URL"
  echo "export RABBITMQ4_MANAGEMENT_URL=$MGMT_URL"
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  env) cmd_env ;;
  *) echo "usage: $0 start|stop|status|env" >&2; exit 2 ;;
esac
