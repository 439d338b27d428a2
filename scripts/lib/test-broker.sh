# Shared by scripts/cluster.sh, scripts/tls-node.sh and scripts/rabbitmq4.sh (sourced, not run):
# the test brokers are guests on a shared machine. They stop only processes whose PIDs they
# recorded when they started them, checked to still be those processes (a PID and its start time
# name one process for good), never anything found by name or pattern; and they refuse to start,
# with exit code 75, when a port they need is held by anything else.
#
# Each script defines log() and die() before sourcing this file.

# `start` exits with this when a port it needs is in use by a process it did not start. The tests
# turn it into a skip with the script's message (a failure under CI=true). EX_TEMPFAIL: try later,
# or elsewhere.
EXIT_PORT_TAKEN=75

# The fields of /proc/PID/stat after the command name (which may hold spaces and parentheses):
# $1 is the state, $2 the parent PID, $4 the session, $20 the start time in clock ticks.
_stat_fields() {
  local s
  read -r s 2>/dev/null <"/proc/$1/stat" || return 1
  echo "${s##*) }"
}

# The start time of a live (not zombie) process, which with its PID names it for good.
proc_start_time() {
  local f
  f=$(_stat_fields "$1") || return 1
  # shellcheck disable=SC2086
  set -- $f
  [[ $1 != Z ]] || return 1
  echo "${20}"
}

proc_alive() { proc_start_time "$1" >/dev/null; }

# pid_record FILE PID: remember PID as one of ours, with its start time.
pid_record() {
  local start
  start=$(proc_start_time "$2") || return 1
  mkdir -p "$(dirname "$1")"
  echo "$2 $start" >"$1"
}

# pid_live FILE: print the recorded PID if that very process is still alive, else fail.
pid_live() {
  local pid start now
  [[ -f $1 ]] || return 1
  read -r pid start <"$1" 2>/dev/null || return 1
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  now=$(proc_start_time "$pid") || return 1
  [[ $now == "$start" ]] || return 1
  echo "$pid"
}

# environ_has PID KEY=VALUE: the process was started with that variable, e.g. the pid file of a
# state folder of ours. How the scripts recognise nodes that older versions of them started and
# did not record.
environ_has() {
  [[ -r /proc/$1/environ ]] && tr '\0' '\n' <"/proc/$1/environ" 2>/dev/null | grep -Fxq -- "$2"
}

# legacy_pid PIDFILE: the PID in a RabbitMQ pid file (RABBITMQ_PID_FILE) if that process is alive
# and was started with RABBITMQ_PID_FILE set to exactly that file, else fail.
legacy_pid() {
  local pid inner=${2:-$1}
  [[ -f $1 ]] || return 1
  pid=$(tr -dc '0-9' <"$1" 2>/dev/null)
  [[ -n $pid ]] && proc_alive "$pid" && environ_has "$pid" "RABBITMQ_PID_FILE=$inner" && echo "$pid"
}

# kill_pid PID SECONDS CHECK...: SIGTERM, then SIGKILL after SECONDS, as long as CHECK (a command
# that prints the PID while it is still the process meant) still names it.
kill_pid() {
  local pid=$1 secs=$2 i
  shift 2
  kill -TERM "$pid" 2>/dev/null || return 0
  for ((i = 0; i < secs * 4; i++)); do
    [[ "$("$@" 2>/dev/null)" == "$pid" ]] || return 0
    sleep 0.25
  done
  [[ "$("$@" 2>/dev/null)" == "$pid" ]] || return 0
  log "pid $pid did not stop within ${secs} s of SIGTERM; sending SIGKILL"
  kill -KILL "$pid" 2>/dev/null || true
  for ((i = 0; i < 20; i++)); do
    [[ "$("$@" 2>/dev/null)" == "$pid" ]] || return 0
    sleep 0.25
  done
}

# stop_recorded FILE [SECONDS]: stop the process FILE records, if it still is that process.
stop_recorded() {
  local pid
  if pid=$(pid_live "$1"); then kill_pid "$pid" "${2:-20}" pid_live "$1"; fi
  rm -f "$1"
}

# A direct child of PARENT whose command name is NAME (e.g. the beam.smp a launcher started).
# Builtins only: this runs in a polling loop.
child_named() {
  local parent=$1 name=$2 p s comm
  local -a f
  for p in /proc/[0-9]*; do
    read -r s 2>/dev/null <"$p/stat" || continue
    read -ra f <<<"${s##*) }"
    [[ ${f[1]} == "$parent" ]] || continue
    read -r comm 2>/dev/null <"$p/comm" || continue
    if [[ $comm == "$name" ]]; then
      echo "${p#/proc/}"
      return 0
    fi
  done
  return 1
}

# await_child FILE PARENT NAME: wait (up to 15 s) for PARENT to exec its NAME child and record it.
await_child() {
  local file=$1 parent=$2 name=$3 child i
  for ((i = 0; i < 150; i++)); do
    if child=$(child_named "$parent" "$name"); then
      pid_record "$file" "$child" && return 0
    fi
    proc_alive "$parent" || return 1
    sleep 0.1
  done
  return 1
}

port_in_use() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# Who listens on a port, as "pid N (name)", where ss can tell.
port_holder() {
  command -v ss >/dev/null || return 0
  ss -Hltnp "sport = :$1" 2>/dev/null | grep -o 'users:(("[^"]*",pid=[0-9]*' | head -n1 |
    sed 's/users:(("\([^"]*\)",pid=\([0-9]*\)/pid \2, \1/'
}

# require_ports_free HINT PORT...: exit EXIT_PORT_TAKEN with one clear line when any PORT is in
# use. Called only once no process of ours is alive, so whatever holds the port is not ours.
require_ports_free() {
  local hint=$1 p who taken=()
  shift
  for p in "$@"; do
    if port_in_use "$p"; then
      who=$(port_holder "$p")
      taken+=("127.0.0.1:$p${who:+ ($who)}")
    fi
  done
  ((${#taken[@]} == 0)) && return 0
  local list
  list=$(printf '%s, ' "${taken[@]}")
  log "port taken: ${list%, } in use by a process this script did not start; nothing started. Choose other ports with $hint"
  exit "$EXIT_PORT_TAKEN"
}

# await_port PORT SECONDS: until something listens on PORT.
await_port() {
  local i
  for ((i = 0; i < $2 * 10; i++)); do
    port_in_use "$1" && return 0
    sleep 0.1
  done
  return 1
}

# An epmd binary: ERL_EPMD_PORT points each node and rabbitmqctl at a private one that we start
# (and so can stop) ourselves, instead of the machine's shared one on 4369.
find_epmd() {
  local e
  e=$(command -v epmd 2>/dev/null) || e=$(ls /usr/lib/erlang/erts-*/bin/epmd 2>/dev/null | head -n1) || true
  [[ -n $e && -x $e ]] || die "epmd not found: install erlang-base"
  echo "$e"
}

# safe_rm_state DIR: remove a state folder, only if it is one (it holds MARKER or the files an
# older version of the script left), so a mistyped TOPO_*_DIR never removes anything else.
safe_rm_state() {
  local dir=$1
  [[ -e $dir ]] || return 0
  [[ $dir == /* && $dir != / ]] || die "refusing to remove '$dir': not an absolute path below /"
  if [[ -f $dir/.topo-test-broker || (-f $dir/rabbitmq-env.conf && -d $dir/home) ]]; then
    rm -rf --one-file-system "$dir"
  else
    die "refusing to remove $dir: it is not a test broker's state folder (no .topo-test-broker in it)"
  fi
}

# The checkout these scripts belong to. `start` writes it into the state folder with the process
# that asked for the start (its parent: the test run's worker, .ci/run, a shell), so that another
# checkout can tell a broker that is still in use by someone else's run from one a finished or
# killed run left behind.
CHECKOUT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)

owner_lines() {
  local start
  start=$(proc_start_time "$PPID") || start=0
  printf 'OWNER=%s\nHOLDER=%s %s\n' "$CHECKOUT" "$PPID" "$start"
}

# foreign_user INSTANCE_FILE: print "the checkout at DIR (its run, pid N, is still going)" when the
# broker was started from another checkout whose run is still alive; else fail. Such a broker is
# not ours to use, restart or stop, even though it uses our default state folder.
foreign_user() {
  local owner holder pid start now
  [[ -f $1 ]] || return 1
  owner=$(sed -n 's/^OWNER=//p' "$1" | head -n1)
  holder=$(sed -n 's/^HOLDER=//p' "$1" | head -n1)
  [[ -n $owner && $owner != "$CHECKOUT" ]] || return 1
  read -r pid start <<<"$holder"
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  now=$(proc_start_time "$pid") || return 1
  [[ $now == "$start" ]] || return 1
  echo "the checkout at $owner (its run, pid $pid, is still going)"
}

# Numbers only, so a port can go into a config file and a URL.
require_port() {
  [[ $2 =~ ^[0-9]+$ ]] && (($2 > 0 && $2 < 65536)) || die "$1 must be a port number (got '$2')"
}

# read_ports FILE NAME...: set each named port variable from the NAME=number lines of FILE (the
# instance file a start wrote), leaving the others as they are.
read_ports() {
  local file=$1 key value name
  shift
  while IFS='=' read -r key value; do
    [[ $value =~ ^[0-9]+$ ]] || continue
    for name in "$@"; do
      if [[ $key == "$name" ]]; then printf -v "$name" '%s' "$value"; fi
    done
  done <"$file"
}

# on_start_failure STOP: the EXIT trap of a start. When the start failed part-way (or was
# interrupted), run STOP (the script's own stop of what it started); the logs stay for a look.
# A signal can land while a command's output goes to /dev/null: say it on the real stderr (fd 8).
on_start_failure() {
  local rc=$?
  exec 2>&8
  if ((rc != 0)); then
    log "start failed (exit $rc): stopping the processes it started"
    "$1"
  fi
}
