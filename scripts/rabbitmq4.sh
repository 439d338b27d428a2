#!/usr/bin/env bash
# Provide a real RabbitMQ 4.0.x broker for integration tests, without Docker.
#
# Usage: scripts/rabbitmq4.sh start|stop|status|env|ctl ARGS (rabbitmqctl against the running node)
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
#   TOPO_RMQ4_SUITE   Debian suite: trixie (default, 4.0.x) or sid (4.3.x, Erlang 29: chroot
#                     rabbitmq4-sid, AMQP 5693, node rabbit43@localhost, run folder
#                     /var/lib/topo-rmq43); scripts/rabbitmq43.sh sets it
#   TOPO_RMQ4_ROOT    chroot location (default /var/cache/topo/rabbitmq4-SUITE)
#   TOPO_RMQ4_MIRROR  Debian mirror (default: read from this host's apt sources)
#   TOPO_RMQ4_WAIT    seconds to wait for the node to answer (default 60)
#   TOPO_RMQ4_EXTRA_CONF  lines appended to the node's rabbitmq.conf for this start
#   TOPO_RMQ4_AMQP_PORT   AMQP port (default 5690)
#   TOPO_RMQ4_MGMT_PORT   management port (default AMQP + 10000)
#   TOPO_RMQ4_DIST_PORT   distribution port (default AMQP + 20000)
#   TOPO_RMQ4_EPMD_PORT   the node's own epmd (default AMQP - 1300)
#   TOPO_RMQ4_RUN_DIR     the node's run folder, a path inside the chroot (default
#                         /var/lib/topo-rmq4, or /var/lib/topo-rmq4-PORT when the AMQP
#                         port is not 5690); so one chroot can serve two instances
#
# The run folder holds the node's config, data and logs, the ports it was started
# with and the PIDs (with start times) of the processes `start` started: epmd, the
# launcher and beam.smp. `stop` stops exactly those, after checking each still is
# the process started, never every process in the chroot (another instance may run
# there). `start` first stops what a killed or failed earlier run left, stops what
# it started when it fails, and exits 75 without starting anything when a port is
# in use by a process it did not start.
#
# Needs root (chroot, mount). Safe to run without a TTY (CI=true).
set -euo pipefail

log() { printf 'rabbitmq4: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# shellcheck source=lib/test-broker.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/test-broker.sh"

# The Debian suite decides the version, and with it everything two instances must not share: the
# cached chroot, the default ports, the node name and the run folder. trixie gives 4.0.x, sid
# (unstable) 4.3.x; scripts/rabbitmq43.sh runs this with TOPO_RMQ4_SUITE=sid.
SUITE="${TOPO_RMQ4_SUITE:-trixie}"
case $SUITE in
  trixie) ROOT_DEFAULT=/var/cache/topo/rabbitmq4-trixie NODENAME=rabbit4@localhost
    PORT_DEFAULT=5690 RUN_BASE=/var/lib/topo-rmq4 VARS=TOPO_RMQ4 ;;
  sid) ROOT_DEFAULT=/var/cache/topo/rabbitmq4-sid NODENAME=rabbit43@localhost
    PORT_DEFAULT=5693 RUN_BASE=/var/lib/topo-rmq43 VARS=TOPO_RMQ43 ;;
  *) die "TOPO_RMQ4_SUITE must be trixie or sid (got '$SUITE')" ;;
esac
# Canonical path: it is compared against /proc/PID/root and /proc/mounts.
ROOT="$(realpath -m "${TOPO_RMQ4_ROOT:-$ROOT_DEFAULT}")"
MARKER="$ROOT/.topo-rabbitmq4-complete"
WAIT_SECS="${TOPO_RMQ4_WAIT:-60}"
HINT="${VARS}_AMQP_PORT (and ${VARS}_MGMT_PORT, ${VARS}_DIST_PORT, ${VARS}_EPMD_PORT)"

AMQP_PORT="${TOPO_RMQ4_AMQP_PORT:-$PORT_DEFAULT}"
require_port TOPO_RMQ4_AMQP_PORT "$AMQP_PORT"
MGMT_PORT="${TOPO_RMQ4_MGMT_PORT:-$((AMQP_PORT + 10000))}"
DIST_PORT="${TOPO_RMQ4_DIST_PORT:-$((AMQP_PORT + 20000))}"
EPMD_PORT="${TOPO_RMQ4_EPMD_PORT:-$((AMQP_PORT - 1300))}"
require_port TOPO_RMQ4_MGMT_PORT "$MGMT_PORT"
require_port TOPO_RMQ4_DIST_PORT "$DIST_PORT"
require_port TOPO_RMQ4_EPMD_PORT "$EPMD_PORT"
WANTED="$AMQP_PORT $MGMT_PORT $DIST_PORT $EPMD_PORT"

# Paths *inside* the chroot. RUN_DIR is wiped on every start so each test run
# gets a fresh broker (empty mnesia/khepri, only guest/guest and vhost "/").
if [[ $AMQP_PORT == "$PORT_DEFAULT" ]]; then RUN_DIR_DEFAULT=$RUN_BASE; else RUN_DIR_DEFAULT=$RUN_BASE-$AMQP_PORT; fi
RUN_DIR="${TOPO_RMQ4_RUN_DIR:-$RUN_DIR_DEFAULT}"
[[ $RUN_DIR =~ ^(/[A-Za-z0-9._-]+){2,}$ && $RUN_DIR != */..* ]] ||
  die "TOPO_RMQ4_RUN_DIR must be an absolute path at least two folders deep, without '..' (got '$RUN_DIR')"
CONF_DIR=$RUN_DIR/conf
RUN="$ROOT$RUN_DIR"         # the run folder, seen from the host
PIDS="$RUN/pids"
RMQ_HOME=/var/lib/rabbitmq   # the package's home for `rabbitmq`; holds the erlang cookie

# A running node keeps the ports it was started with, whatever the environment says now: every
# command but `start` talks to the node its run folder describes. A run folder an older version
# of this script left (no `instance` file) had the default ports.
RECORDED=""
load_recorded() {
  if [[ -f $RUN/instance ]]; then
    read_ports "$RUN/instance" AMQP_PORT MGMT_PORT DIST_PORT EPMD_PORT
    RECORDED="$AMQP_PORT $MGMT_PORT $DIST_PORT $EPMD_PORT"
  elif [[ $SUITE == trixie && -f $RUN/rabbit4.pid ]]; then
    AMQP_PORT=5690 MGMT_PORT=15690 DIST_PORT=25690 EPMD_PORT=4390
    RECORDED="$AMQP_PORT $MGMT_PORT $DIST_PORT $EPMD_PORT"
  fi
  set_urls
}

set_urls() {
  AMQP_URL="amqp://guest:guest@127.0.0.1:${AMQP_PORT}"
  MGMT_URL="http://guest:guest@127.0.0.1:${MGMT_PORT}"
  # What the log and status print: the same addresses with the password masked. Only `env`
  # prints the URLs whole, for eval.
  SHOWN_URLS="amqp://guest:***@127.0.0.1:${AMQP_PORT}, management http://guest:***@127.0.0.1:${MGMT_PORT}"
}
set_urls

export DEBIAN_FRONTEND=noninteractive
# Turn Ctrl-C / CI cancellation into a normal exit so the EXIT traps below
# (which kill the node and unmount) also run then.
trap 'exit 130' INT
trap 'exit 143' TERM HUP

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

# Every process of ours still alive, as "label pid" lines: those this script recorded, and the
# node (and the epmd it spawned) of an older version of it, recognised by the pid file it was
# told to write into our run folder and by running in our chroot.
legacy_pid_here() {
  local pid
  pid=$(legacy_pid "$RUN/rabbit4.pid" "$RUN_DIR/rabbit4.pid") && [[ /proc/$pid/root -ef $ROOT ]] && echo "$pid"
}

legacy_epmd() {
  local pid
  [[ ! -f $RUN/instance ]] || return 1
  pid=$(port_holder "$EPMD_PORT" | sed -n 's/^pid \([0-9]*\),.*/\1/p')
  [[ -n $pid ]] && [[ /proc/$pid/root -ef $ROOT ]] && environ_has "$pid" "RABBITMQ_PID_FILE=$RUN_DIR/rabbit4.pid" &&
    [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" == epmd ]] && echo "$pid"
}

own_pids() {
  local f pid
  for f in "$PIDS"/*; do
    [[ -f $f ]] || continue
    if pid=$(pid_live "$f"); then echo "${f##*/} $pid"; fi
  done
  if pid=$(legacy_pid_here); then echo "pidfile $pid"; fi
  if pid=$(legacy_epmd); then echo "epmd.legacy $pid"; fi
  return 0
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

# Only for an unfinished build (no marker yet, so no node can run from it): debootstrap and
# apt leftovers. A running node is stopped by its recorded PIDs (stop_node), never this way.
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

# A minimal debootstrap of sid has no /etc/hosts, and the node then dies at boot with
# {epmd_error,"localhost",nxdomain}: give the chroot the host's, which resolves localhost.
# Also run on every start, so a chroot built without one is mended.
ensure_hosts() {
  if [[ ! -s $ROOT/etc/hosts ]]; then
    cp -L /etc/hosts "$ROOT/etc/hosts" 2>/dev/null || printf '127.0.0.1\tlocalhost\n::1\tlocalhost\n' >"$ROOT/etc/hosts"
    chmod 0644 "$ROOT/etc/hosts"
  fi
}

build_chroot() {
  if [[ -f $MARKER ]]; then return 0; fi
  local mirror start
  mirror="$(detect_mirror)"
  start=$SECONDS
  log "building $SUITE chroot in $ROOT from $mirror (first run only, ~1.5-3 min, ~350 MB)"

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
    # The 4.0 and 4.3 builds can run side by side (.ci/run starts them together), and apt takes
    # one lock for the host: the second apt-get failed at once with "Could not get lock". One
    # install at a time (flock), and apt itself waits for a lock held by anyone else.
    (
      flock -w 600 9 || die "waited 600 s for another install of debootstrap on the host"
      if ! command -v debootstrap >/dev/null; then
        # Some third-party apt sources may be unreachable; the Debian ones suffice.
        apt-get -o DPkg::Lock::Timeout=600 update -qq || log "warning: apt-get update reported errors; continuing"
        DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends debootstrap >/dev/null
      fi
    ) 9>/var/lock/topo-host-apt.lock
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
  ensure_hosts
  # Only unstable's Release file can be past its Valid-Until date on a mirror (it is re-signed
  # often, mirrors lag): accept it there, for this chroot's apt only, never for the host's.
  local apt_opts=""
  if [[ $SUITE == sid ]]; then apt_opts="-o Acquire::Check-Valid-Until=false"; fi

  mount_proc
  chroot "$ROOT" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8 \
    sh -c "apt-get $apt_opts update -qq && apt-get install -y -qq --no-install-recommends rabbitmq-server curl ca-certificates && apt-get clean" \
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

# Static config, rewritten on every start so edits here take effect. It lives in the run folder:
# two instances in one chroot never share it.
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

# The run folder is emptied on every start; only ever one of ours (or the old default one).
wipe_run_dir() {
  [[ -e $RUN ]] || return 0
  [[ -f $RUN/.topo-test-broker || $RUN_DIR == /var/lib/topo-rmq4 ]] ||
    die "refusing to empty $RUN: it is not a run folder of this script (no .topo-test-broker in it)"
  rm -rf --one-file-system "${RUN:?}"
}

start_epmd() {
  local -a envv
  mapfile -t envv < <(chroot_env)
  setsid chroot --userspec=rabbitmq:rabbitmq "$ROOT" "${envv[@]}" \
    /usr/bin/epmd -port "$EPMD_PORT" </dev/null >"$RUN/log/epmd.log" 2>&1 8>&- 9>&- &
  pid_record "$PIDS/epmd" $! || die "epmd exited at once: $(cat "$RUN/log/epmd.log")"
  await_port "$EPMD_PORT" 10 || die "epmd does not listen on 127.0.0.1:$EPMD_PORT: $(cat "$RUN/log/epmd.log")"
}

# A start that fails part-way (or is interrupted) stops what it started: see on_start_failure.
on_start_exit() { on_start_failure stop_node; }

# A node in our run folder that another checkout's run still uses is not ours: its ports are
# taken. Exit 75 like any taken port, so that run's tests go on and ours skip.
refuse_foreign() {
  local user
  if [[ -n "$(own_pids)" ]] && user=$(foreign_user "$RUN/instance"); then
    log "port taken: 127.0.0.1:$AMQP_PORT, $MGMT_PORT and the node in $RUN are in use by $user; $1. Choose other ports with $HINT"
    exit "$EXIT_PORT_TAKEN"
  fi
}

cmd_start() {
  require_root
  take_lock
  local version
  load_recorded
  refuse_foreign "nothing started"
  if [[ -n "$(own_pids)" ]]; then
    if [[ $RECORDED != "$WANTED" ]]; then
      die "a node from $RUN runs on other ports (AMQP, management, distribution, epmd: $RECORDED); stop it first, or set TOPO_RMQ4_RUN_DIR"
    fi
    if version="$(api_version)"; then
      case $version in
        4.*) log "already running: RabbitMQ $version on :$AMQP_PORT/:$MGMT_PORT"; return 0 ;;
      esac
    fi
    log "an earlier run left processes in $RUN: stopping them first"
    stop_node
    [[ -z "$(own_pids)" ]] || die "processes of an earlier run are still alive: $(own_pids | tr '\n' ' ')"
  fi
  read -r AMQP_PORT MGMT_PORT DIST_PORT EPMD_PORT <<<"$WANTED"
  set_urls
  require_ports_free "$HINT" "$AMQP_PORT" "$MGMT_PORT" "$DIST_PORT" "$EPMD_PORT"

  build_chroot
  ensure_hosts

  # Fresh node data each start: tests expect an empty broker.
  wipe_run_dir
  mkdir -p "$RUN/log" "$PIDS"
  : >"$RUN/.topo-test-broker"
  {
    printf 'AMQP_PORT=%s\nMGMT_PORT=%s\nDIST_PORT=%s\nEPMD_PORT=%s\n' "$AMQP_PORT" "$MGMT_PORT" "$DIST_PORT" "$EPMD_PORT"
    owner_lines
  } >"$RUN/instance"
  write_config
  chroot "$ROOT" chown -R rabbitmq:rabbitmq "$RUN_DIR"
  mount_proc

  # Any failure from here on must leave no process of ours behind.
  exec 8>&2
  trap on_start_exit EXIT

  start_epmd
  local console="$RUN/log/console.log"
  local -a envv
  mapfile -t envv < <(chroot_env)
  # setsid + nohup: detach from this shell/CI step so the node outlives it;
  # stdin from /dev/null and fds 8 and 9 (stderr's copy, the lock) closed so nothing is inherited.
  setsid nohup chroot --userspec=rabbitmq:rabbitmq "$ROOT" "${envv[@]}" \
    /usr/lib/rabbitmq/bin/rabbitmq-server </dev/null >"$console" 2>&1 8>&- 9>&- &
  local launcher=$!
  pid_record "$PIDS/launcher" "$launcher" || true # exited at once: the wait below says so
  await_child "$PIDS/beam" "$launcher" beam.smp || log "no beam.smp under the launcher (pid $launcher)"
  log "starting $NODENAME (pid $launcher), waiting up to ${WAIT_SECS}s"

  local deadline=$((SECONDS + WAIT_SECS))
  while ((SECONDS < deadline)); do
    if version="$(api_version)"; then
      case $version in
        4.*)
          trap - EXIT
          log "RabbitMQ $version ready on $SHOWN_URLS"
          return 0 ;;
        *) log "unexpected version $version"; break ;;
      esac
    fi
    if ! pid_live "$PIDS/launcher" >/dev/null; then
      log "node process exited early"
      break
    fi
    sleep 1
  done

  log "node did not become ready; last lines of its logs:"
  local f
  for f in "$console" "$RUN/log/${NODENAME}.log"; do
    if [[ -s $f ]]; then echo "--- $f" >&2; tail -n 40 "$f" >&2; fi
  done
  exit 1   # EXIT trap stops the node
}

# Stop without taking the lock (callers hold it). Never fails. Only our recorded processes (or
# the old script's node, recognised by its pid file): another instance may run in this chroot.
stop_node() {
  local pid
  # rabbitmqctl only while the node's epmd listens: without one it would start one of its own.
  if { pid_live "$PIDS/beam" >/dev/null || legacy_pid_here >/dev/null; } &&
    [[ -x $ROOT/usr/lib/rabbitmq/bin/rabbitmqctl ]] && port_in_use "$EPMD_PORT"; then
    # Graceful first so quorum queues/khepri shut down cleanly. Needs /proc.
    mount_proc 2>/dev/null || true
    local -a envv
    mapfile -t envv < <(chroot_env)
    timeout 30 chroot --userspec=rabbitmq:rabbitmq "$ROOT" "${envv[@]}" \
      /usr/lib/rabbitmq/bin/rabbitmqctl -q stop </dev/null >/dev/null 2>&1 \
      || log "rabbitmqctl stop failed or timed out; stopping the node by its PIDs"
  fi
  stop_recorded "$PIDS/beam" 20
  stop_recorded "$PIDS/launcher" 5
  if pid=$(legacy_pid_here); then kill_pid "$pid" 20 legacy_pid_here; fi
  # rabbitmqctl stop leaves epmd running.
  stop_recorded "$PIDS/epmd" 5
  if pid=$(legacy_epmd); then kill_pid "$pid" 5 legacy_epmd; fi
  # /proc stays mounted while anything (another instance) still runs in the chroot.
  if [[ -z "$(chroot_pids)" ]]; then unmount_all; fi
}

cmd_stop() {
  require_root
  take_lock
  local start=$SECONDS left
  load_recorded
  refuse_foreign "not stopping it"
  stop_node
  left=$(own_pids)
  [[ -z $left ]] || die "still alive: $(tr '\n' ' ' <<<"$left")"
  if [[ -n "$(chroot_pids)" ]]; then
    log "stopped ($((SECONDS - start)) s); another instance still runs in $ROOT, so its /proc stays mounted"
  else
    log "stopped ($((SECONDS - start)) s); cache kept at $ROOT"
  fi
}

# Exit 0 only when this script's node answers.
cmd_status() {
  local version user
  load_recorded
  if [[ -n "$(own_pids)" ]] && user=$(foreign_user "$RUN/instance"); then
    echo "stopped for this checkout: the node in $RUN is in use by $user"
    return 3
  fi
  if [[ -n "$(own_pids)" ]] && version="$(api_version)"; then
    echo "running: RabbitMQ $version ($SHOWN_URLS)"
    return 0
  fi
  if [[ -n "$(own_pids)" ]]; then
    echo "not ready: processes of $RUN are alive but the management API does not answer"
  elif version="$(api_version)"; then
    echo "stopped; 127.0.0.1:$MGMT_PORT answers with RabbitMQ $version, which this script did not start"
  else
    echo "stopped"
  fi
  if [[ -f $MARKER ]]; then echo "cache: $(cat "$MARKER") at $ROOT"; else echo "cache: not built ($ROOT)"; fi
  return 3   # LSB "not running"
}

# rabbitmqctl against this script's running node, e.g. `ctl eval 'application:get_env(rabbit, channel_max).'`.
cmd_ctl() {
  require_root
  load_recorded
  refuse_foreign "not running rabbitmqctl against it"
  pid_live "$PIDS/beam" >/dev/null || die "not running: start it first"
  mount_proc 2>/dev/null || true
  local -a envv
  mapfile -t envv < <(chroot_env)
  timeout 60 chroot --userspec=rabbitmq:rabbitmq "$ROOT" "${envv[@]}" /usr/lib/rabbitmq/bin/rabbitmqctl -q "$@" </dev/null
}

cmd_env() {
  load_recorded
  echo "export RABBITMQ4_URL=$AMQP_URL"
  echo "export RABBITMQ4_MANAGEMENT_URL=$MGMT_URL"
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  env) cmd_env ;;
  ctl) shift; cmd_ctl "$@" ;;
  *) echo "usage: $0 start|stop|status|env|ctl ARGS" >&2; exit 2 ;;
esac
