#!/usr/bin/env bash
# Provision a machine for cronframework with the same scripts CI uses; idempotent, so it can run again.
#
#   scripts/provision.sh --check      verify every script it would call is present and parses; change nothing
#   scripts/provision.sh              this machine, as CI: install-deps, zookeeper, dockerd start, test image,
#                                     nomad install
#   scripts/provision.sh --roles zookeeper,scheduler[,docker,nomad] --node-id N --zk-servers IP1,IP2,IP3
#                        [--backend-host IP]
#                                     a Vagrant node (see Vagrantfile): the above for its roles, then a ZooKeeper
#                                     ensemble member and a scheduler replica as systemd services; with
#                                     --backend-host, every replica launches on that node's Docker (which then
#                                     also listens on IP:2375, the lab network's own) and Nomad agent (IP:4646)
#
# Installing is left to the scripts named below (never duplicated here); this script only wires services.
set -euo pipefail
# Vagrant runs a copy of this script from /tmp: then the repo is the synced folder
REPO=$(cd "$(dirname "$0")/.." && pwd)
[ -f "$REPO/scripts/install-deps.sh" ] || REPO=${CRONFRAMEWORK_REPO:-/cronframework}
cd "$REPO"

CHECK=0
ROLES="zookeeper,scheduler,docker,nomad"
VM=0
NODE_ID=""
ZK_SERVERS=""
BACKEND_HOST=""
ETC=/etc/cronframework
TASKS=/var/lib/cronframework/tasks  # a directory tasks may write to (docker: the one bind mount allowed)
VENV=/opt/cronframework/venv

say() { echo "provision: $*" >&2; }

while [ $# -gt 0 ]; do
  case "$1" in
    --check) CHECK=1 ;;
    --roles) ROLES="$2"; VM=1; shift ;;
    --node-id) NODE_ID="$2"; shift ;;
    --zk-servers) ZK_SERVERS="$2"; shift ;;
    --backend-host) BACKEND_HOST="$2"; shift ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) say "unknown argument: $1"; exit 2 ;;
  esac
  shift
done

has_role() { [[ ",$ROLES," == *",$1,"* ]]; }

# The plan: the CI scripts each role needs, in CI's order (scripts/test.sh).
plan() {
  echo "scripts/install-deps.sh"
  has_role zookeeper && echo "scripts/zookeeper.sh"
  has_role docker && echo "scripts/dockerd.sh start" && echo "scripts/test-image.sh"
  has_role nomad && echo "scripts/nomad.sh install"
  return 0
}

check() {
  local bad=0 script
  while read -r script _; do
    if [ -f "$script" ] && bash -n "$script"; then
      echo "ok $script"
    else
      echo "MISSING or unparsable: $script"; bad=1
    fi
  done < <(plan)
  for tool in java docker python3 ruby go; do
    if command -v "$tool" >/dev/null 2>&1; then echo "have $tool"; else echo "not yet installed: $tool"; fi
  done
  return "$bad"
}

run_plan() {
  local step
  while read -r step; do
    say "running $step"
    # shellcheck disable=SC2086  # a step is a script plus its arguments
    $step
  done < <(plan)
}

# -- VM only: services ------------------------------------------------------------------------------------------
zookeeper_service() {
  local data=/var/lib/cronframework/zookeeper i=1 ip cp
  mkdir -p "$ETC" "$data"
  echo "$NODE_ID" > "$data/myid"
  {
    echo "tickTime=2000"; echo "initLimit=10"; echo "syncLimit=5"
    echo "dataDir=$data"; echo "clientPort=2181"; echo "admin.enableServer=false"
    echo "4lw.commands.whitelist=ruok,srvr,mntr"
    for ip in ${ZK_SERVERS//,/ }; do echo "server.$i=$ip:2888:3888"; i=$((i + 1)); done
  } > "$ETC/zoo.cfg"
  # the jars integration/zk.py runs ZooKeeper with (Debian's zookeeper package)
  cp=$(ls /usr/share/java/zookeeper.jar /usr/share/java/slf4j-log4j12.jar /usr/share/java/log4j-1.2.jar 2>/dev/null | paste -sd:)
  unit cronframework-zookeeper "ZooKeeper ensemble member $NODE_ID" \
    "/usr/bin/java -Xmx512m -cp $cp org.apache.zookeeper.server.quorum.QuorumPeerMain $ETC/zoo.cfg"
}

scheduler_service() {
  local hosts
  hosts=$(echo "$ZK_SERVERS" | sed 's/\([^,]*\)/\1:2181/g')
  mkdir -p "$ETC" /var/lib/cronframework/process "$TASKS"
  cat > "$ETC/scheduler.yaml" <<EOF
zookeeper: {hosts: "$hosts", root: /cronframework, session_timeout: 10}
backends:
  process: {state_dir: /var/lib/cronframework/process}
$(backend_config)
EOF
  unit cronframework-scheduler "cronframework scheduler replica" \
    "$VENV/bin/python3 -m cronframework scheduler --config $ETC/scheduler.yaml --replica-id $(hostname) --log-json"
}

# The backends each replica launches on: its own node's Docker, or with --backend-host that node's Docker and Nomad
backend_config() {
  if [ -n "$BACKEND_HOST" ]; then
    echo "  docker: {base_url: \"tcp://$BACKEND_HOST:2375\", allowed_mounts: [$TASKS]}"
    echo "  nomad: {address: \"http://$BACKEND_HOST:4646\"}"
  elif has_role docker; then
    echo "  docker: {}"
  fi
}

nomad_service() {
  local bin config=""
  bin=$(scripts/nomad.sh install | tail -1)
  mkdir -p "$ETC"
  if [ -n "$BACKEND_HOST" ]; then  # the address the other replicas reach it at (it may not have a default route)
    printf 'advertise {\n  http = "%s"\n  rpc = "%s"\n  serf = "%s"\n}\n' "$BACKEND_HOST" "$BACKEND_HOST" \
      "$BACKEND_HOST" > "$ETC/nomad.hcl"
    config="-config $ETC/nomad.hcl"
  fi
  unit cronframework-nomad "Nomad dev agent (server + client) for the nomad backend" \
    "$bin agent -dev -bind 0.0.0.0 -data-dir /var/lib/cronframework/nomad $config"
}

unit() {
  local name=$1 what=$2 exec=$3
  cat > "/etc/systemd/system/$name.service" <<EOF
[Unit]
Description=$what
After=network-online.target
Wants=network-online.target

[Service]
ExecStart=$exec
WorkingDirectory=$REPO
Restart=always
RestartSec=2
KillSignal=SIGTERM
TimeoutStopSec=30

[Install]
WantedBy=multi-user.target
EOF
  systemctl daemon-reload
  systemctl enable --now "$name.service"
  systemctl restart "$name.service"
}

if [ "$CHECK" = 1 ]; then
  check
  exit $?
fi
if [ "$VM" = 0 ]; then
  run_plan
  say "done (this machine, as CI)"
  exit 0
fi
[ -n "$NODE_ID" ] && [ -n "$ZK_SERVERS" ] || { say "--roles needs --node-id and --zk-servers"; exit 2; }
# the other replicas launch on this node's Docker: it listens on the lab network too
if has_role docker && [ -n "$BACKEND_HOST" ]; then
  export DOCKERD_FLAGS="${DOCKERD_FLAGS:-} -H unix:///var/run/docker.sock -H tcp://$BACKEND_HOST:2375"
fi
# install-deps.sh makes the virtualenv (Debian's python refuses system-wide pip installs) with the locked versions
CRONFRAMEWORK_VENV=$VENV CRONFRAMEWORK_DEPS=locked run_plan
has_role zookeeper && zookeeper_service
has_role nomad && nomad_service
has_role scheduler && scheduler_service
say "node $NODE_ID provisioned with roles $ROLES"
