#!/usr/bin/env bash
# Local Docker daemon for cronframework's integration tests and benchmarks.
#
#   scripts/dockerd.sh [start] [OPTIONS]   install docker.io when missing, start dockerd unless one answers, wait for it
#   scripts/dockerd.sh stop [OPTIONS]      stop the daemon recorded in the pidfile, wait until it is gone
#   scripts/dockerd.sh status [OPTIONS]    exit 0 when a daemon answers on the socket
#
# Without options: the machine's shared daemon (/var/run/docker.sock, /var/run/docker.pid, /var/lib/docker,
# /var/run/docker). A private daemon beside it, as the fault suite runs (it stops and freezes its daemon), takes
# all four of (or the same in CRONFRAMEWORK_DOCKERD_SOCKET, _PIDFILE, _DATA_ROOT, _EXEC_ROOT):
#   --socket PATH  --pidfile PATH  --data-root DIR  --exec-root DIR  [--log FILE]
# A private daemon starts a containerd of its own under its exec root and names its containerd namespaces after its
# data root, so even a containerd shared by both would keep their containers apart. Keep the socket and exec root
# paths short: a unix socket path (containerd's are under the exec root) is at most 107 bytes.
#
# Every daemon is started without the default bridge and without iptables rules: the tests need no container
# networking, a sandbox may forbid both (and must not route container traffic anywhere), and two daemons then
# never compete for a bridge or a rule. If dockerd dies on start, the next set of options is tried (vfs storage
# works where overlayfs does not). Extra flags can be passed in DOCKERD_FLAGS. The log goes to --log, else
# $CRONFRAMEWORK_DOCKERD_LOG (default /tmp/cronframework-dockerd.log).
set -euo pipefail

LOG=${CRONFRAMEWORK_DOCKERD_LOG:-/tmp/cronframework-dockerd.log}
WAIT=${CRONFRAMEWORK_DOCKERD_WAIT:-60}
SLOW_WAIT=${CRONFRAMEWORK_DOCKERD_SLOW_WAIT:-600}
SHARED_SOCK=/var/run/docker.sock
SHARED_PIDFILE=/var/run/docker.pid
SOCK=${CRONFRAMEWORK_DOCKERD_SOCKET:-}
PIDFILE=${CRONFRAMEWORK_DOCKERD_PIDFILE:-}
DATA_ROOT=${CRONFRAMEWORK_DOCKERD_DATA_ROOT:-}
EXEC_ROOT=${CRONFRAMEWORK_DOCKERD_EXEC_ROOT:-}
LOCK=/tmp/cronframework-dockerd.lock
PRIVATE_FLAGS=()
OPTION_SETS=(
  "--bridge=none --iptables=false"
  "--bridge=none --iptables=false --storage-driver=vfs"
  "--bridge=none --iptables=false --ip-masq=false --storage-driver=vfs --exec-opt native.cgroupdriver=cgroupfs"
)

say() { echo "dockerd.sh: $*" >&2; }

answers() {
  timeout 10 docker -H "unix://$SOCK" version --format '{{.Server.Version}}' >/dev/null 2>&1
}

daemon_pid() {
  local pid
  [[ -s $PIDFILE ]] || return 1
  pid=$(cat "$PIDFILE")
  kill -0 "$pid" 2>/dev/null || return 1
  echo "$pid"
}

apt_install() {
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y "$@" || { apt-get update && apt-get install -y "$@"; }
}

ensure_installed() {
  if ! command -v dockerd >/dev/null || ! command -v docker >/dev/null; then
    say "installing docker.io"
    apt_install docker.io >&2
  fi
}

# Wait until the daemon answers (0), its process dies (1) or WAIT seconds pass (2).
wait_for_daemon() {
  local pid=$1 deadline=$((SECONDS + WAIT))
  while ((SECONDS < deadline)); do
    answers && return 0
    kill -0 "$pid" 2>/dev/null || return 1
    sleep 0.5
  done
  return 2
}

try_start() {
  local flags=$1 pid rc=0
  say "starting dockerd $flags ${PRIVATE_FLAGS[*]} ${DOCKERD_FLAGS:-} (log: $LOG)"
  # shellcheck disable=SC2086  # the option sets are word lists on purpose
  setsid dockerd $flags "${PRIVATE_FLAGS[@]}" ${DOCKERD_FLAGS:-} >>"$LOG" 2>&1 </dev/null 9>&- &
  pid=$!
  wait_for_daemon "$pid" || rc=$?
  if ((rc == 2)); then
    # Alive but slow (a restart cleaning up many old sandboxes can take minutes). Falling back to the next option
    # set here would start a second daemon on another storage driver, where none of the images exist: wait.
    say "dockerd (pid $pid) still starting after ${WAIT}s; waiting up to ${SLOW_WAIT}s more"
    rc=0
    WAIT=$SLOW_WAIT wait_for_daemon "$pid" || rc=$?
  fi
  if ((rc == 0)); then
    say "dockerd answers on unix://$SOCK (pid $pid, log: $LOG)"
    return 0
  fi
  say "dockerd with '$flags' did not come up (rc $rc); see $LOG"
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  ((rc == 1)) || exit 1  # it never died: another option set would not help
  return 1
}

start() {
  ensure_installed
  if ((${#PRIVATE_FLAGS[@]})); then
    mkdir -p "$(dirname "$SOCK")" "$DATA_ROOT" "$EXEC_ROOT"
  fi
  if answers; then
    say "dockerd already answers on unix://$SOCK"
    return 0
  fi
  local pid
  if pid=$(daemon_pid); then
    say "dockerd (pid $pid) is running but not answering yet; waiting"
    wait_for_daemon "$pid" && return 0
    say "dockerd pid $pid never answered; see $LOG"
    return 1
  fi
  for flags in "${OPTION_SETS[@]}"; do
    try_start "$flags" && return 0
  done
  say "could not start dockerd with any option set; last lines of $LOG:"
  tail -n 30 "$LOG" >&2 || true
  return 1
}

stop() {
  local pid deadline
  if ! pid=$(daemon_pid); then
    say "no dockerd running"
    return 0
  fi
  say "stopping dockerd (pid $pid)"
  kill -TERM "$pid"
  deadline=$((SECONDS + 30))
  while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
  if kill -0 "$pid" 2>/dev/null; then
    say "dockerd ignored SIGTERM for 30s; killing it"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  say "dockerd stopped"
}

usage() {
  say "usage: $0 [start|stop|status] [--socket PATH --pidfile PATH --data-root DIR --exec-root DIR] [--log FILE]"
  exit 2
}

parse_options() {
  while (($#)); do
    (($# >= 2)) || usage
    case $1 in
      --socket) SOCK=$2 ;;
      --pidfile) PIDFILE=$2 ;;
      --data-root) DATA_ROOT=$2 ;;
      --exec-root) EXEC_ROOT=$2 ;;
      --log) LOG=$2 ;;
      *) usage ;;
    esac
    shift 2
  done
}

# The shared daemon when none of the four is given; else a private one, which needs all four and none of them the
# shared daemon's (two daemons on one data root or exec root corrupt each other).
choose_daemon() {
  if [[ -z $SOCK$PIDFILE$DATA_ROOT$EXEC_ROOT ]]; then
    SOCK=$SHARED_SOCK PIDFILE=$SHARED_PIDFILE
    return 0
  fi
  if [[ -z $SOCK || -z $PIDFILE || -z $DATA_ROOT || -z $EXEC_ROOT ]]; then
    say "a private daemon needs --socket, --pidfile, --data-root and --exec-root (all four)"
    exit 2
  fi
  if [[ $SOCK == "$SHARED_SOCK" || $PIDFILE == "$SHARED_PIDFILE" || $DATA_ROOT == /var/lib/docker ||
    $EXEC_ROOT == /var/run/docker || $EXEC_ROOT == /run/docker ]]; then
    say "a private daemon cannot use the shared daemon's socket, pidfile, data root or exec root"
    exit 2
  fi
  local namespace
  namespace=cf-$(printf %s "$DATA_ROOT" | cksum | cut -d' ' -f1)
  PRIVATE_FLAGS=(-H "unix://$SOCK" "--pidfile=$PIDFILE" "--data-root=$DATA_ROOT" "--exec-root=$EXEC_ROOT"
    "--containerd-namespace=$namespace" "--containerd-plugins-namespace=$namespace-plugins")
  LOCK=$PIDFILE.lock
  mkdir -p "$(dirname "$PIDFILE")"
}

main() {
  local command=${1:-start}
  (($#)) && shift
  case $command in
    start | stop | status) ;;
    *) usage ;;
  esac
  parse_options "$@"
  choose_daemon
  exec 9>"$LOCK"
  flock 9
  case $command in
    start) start ;;
    stop) stop ;;
    status) answers ;;
  esac
}

main "$@"
