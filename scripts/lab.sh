#!/usr/bin/env bash
# The three-VM lab (Vagrantfile, provider libvirt) on this machine, with nothing on any network but its own.
#
#   scripts/lab.sh up [NODE...]     namespace, libvirtd, box, `vagrant up` (boot + provision); all nodes by default
#   scripts/lab.sh test [ARGS...]   up, then the lab's integration run (python -m integration.lab ARGS), then down
#                                   (CF_LAB_KEEP=1 keeps the VMs); exit status: the run's
#   scripts/lab.sh down             destroy the VMs and the lab's networks, stop its libvirtd, remove the namespace
#   scripts/lab.sh smoke [NODE]     one VM (default cf3) booted to Vagrant's ssh, without provisioning, checked and
#                                   destroyed again (a quick look at a new box; CI runs `test`)
#   scripts/lab.sh status           what is up
#   scripts/lab.sh packages         install this machine's packages for the lab (Debian's), when missing
#   scripts/lab.sh accel            `kvm` if a KVM guest boots here, else `qemu` (TCG); probed once, then cached
#   scripts/lab.sh run CMD...       CMD inside the lab's namespace and Vagrant environment, e.g. `vagrant ssh cf1`
#
# Networking: a network namespace of the lab's own (CF_LAB_NETNS, default cflab) with only its loopback; libvirtd
# and virtlogd are started inside it, so the bridges libvirt makes for the management network (Vagrant's ssh,
# 192.168.121.0/24) and the private network (192.168.56.0/24), its dnsmasq and the VMs' interfaces exist only
# there; both networks are isolated (no forwarding). Vagrant and the integration run are started inside it too.
# Nothing is routed to or from any other address. `down` (and `test`, on its way out) removes all of it.
#
# State: $CF_LAB_DIR (default /var/lib/cronframework-lab): the box cache (scripts/lab-box.sh), VAGRANT_HOME, the
# machines' Vagrant state, libvirtd's pid files and logs, the probe's result, the run's logs.
set -euo pipefail
shopt -s inherit_errexit
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"

LAB_DIR=${CF_LAB_DIR:-/var/lib/cronframework-lab}
NETNS=${CF_LAB_NETNS:-cflab}
RUN=$LAB_DIR/run
NETWORKS=(cf-lab cf-lab-mgmt)
export VAGRANT_HOME=$LAB_DIR/vagrant.d VAGRANT_DOTFILE_PATH=$LAB_DIR/machines VAGRANT_DEFAULT_PROVIDER=libvirt
export CF_LAB_CONSOLE_DIR=$LAB_DIR/console
export VAGRANT_CHECKPOINT_DISABLE=1 LIBVIRT_DEFAULT_URI=qemu:///system

say() { echo "lab: $*" >&2; }
stamp() { date +%s.%N; }
since() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.0f}')" "$1" "$(stamp)"; }

in_ns() { ip netns exec "$NETNS" "$@"; }

# -- the namespace and libvirtd ---------------------------------------------------------------------------------
ns_inode() { stat -L -c %i "/run/netns/$NETNS" 2>/dev/null; }

# 0 when PID runs in the lab's namespace
in_lab_ns() { [ "$(readlink "/proc/$1/ns/net" 2>/dev/null)" = "net:[$(ns_inode)]" ]; }

namespace() {
  if [ -z "$(ns_inode)" ]; then
    ip netns add "$NETNS"
    say "network namespace $NETNS created"
  fi
  ip -n "$NETNS" link set lo up
}

daemon_pid() {  # NAME: the pid in its pid file, when that process is alive
  local file=$RUN/$1.pid
  [ -s "$file" ] && kill -0 "$(cat "$file")" 2>/dev/null && cat "$file"
}

refuse_foreign_libvirtd() {
  local pid
  for pid in $(pgrep -x libvirtd || true); do
    in_lab_ns "$pid" || { say "a libvirtd (pid $pid) runs outside $NETNS: its networks would not be the lab's; stop it first"; exit 1; }
  done
}

libvirt() {
  mkdir -p "$RUN"
  refuse_foreign_libvirtd
  # libvirt's `default` network (192.168.122.0/24) must never come up: not even in the namespace
  rm -f /etc/libvirt/qemu/networks/autostart/default.xml
  # QEMU runs as root in the lab: libvirt checks /dev/kvm as the qemu user and probes it as root, and where the two
  # disagree (here /dev/kvm's group is not the qemu user's) it probes QEMU again on every call, a minute per
  # `vagrant up` step. The lab's own qemu.conf, bind-mounted for its libvirtd alone: the machine's is untouched.
  printf '# scripts/lab.sh: the lab'"'"'s libvirtd only\nuser = "root"\ngroup = "root"\n' >"$RUN/qemu.conf"
  local name
  for name in virtlogd libvirtd; do
    daemon_pid "$name" >/dev/null && continue
    # shellcheck disable=SC2016  # expanded by the inner shell
    in_ns unshare --mount --propagation private sh -c \
      'mount --bind "$1" /etc/libvirt/qemu.conf && exec "$2" --daemon --pid-file "$3"' \
      lab "$RUN/qemu.conf" "$name" "$RUN/$name.pid"
    for _ in $(seq 100); do daemon_pid "$name" >/dev/null && break; sleep 0.1; done
    daemon_pid "$name" >/dev/null || { say "$name did not start"; exit 1; }
    say "$name started in $NETNS (pid $(daemon_pid "$name"))"
  done
  for _ in $(seq 100); do virsh -q version >/dev/null 2>&1 && return 0; sleep 0.2; done
  say "libvirtd does not answer"; exit 1
}

# -- KVM or TCG -------------------------------------------------------------------------------------------------
# A KVM guest may hang right after its kernel starts (as on this project's CI machines, where /dev/kvm opens): boot
# the box's kernel once with KVM and see whether it reaches the initramfs's /init; if not, TCG.
accel() {
  local cached=$LAB_DIR/accel box
  if [ ! -s "$cached" ]; then
    box=$(dirname "$(scripts/lab-box.sh)")
    if probe_kvm "$box"; then echo kvm >"$cached"; else echo qemu >"$cached"; fi
  fi
  cat "$cached"
}

probe_kvm() {
  local box=$1 started
  [ -r /dev/kvm ] && [ -w /dev/kvm ] || { say "no usable /dev/kvm: TCG"; return 1; }
  started=$(stamp)
  if timeout 30 qemu-system-x86_64 -accel kvm -cpu host -m 512 -nodefaults -no-user-config -nographic \
      -serial stdio -nic none -kernel "$box/vmlinuz" -initrd "$box/initrd.img" -append "console=ttyS0 panic=-1" \
      2>&1 | grep -q -m1 -a "Run /init"; then
    say "a KVM guest reached /init in $(since "$started")s: KVM"
    return 0
  fi
  say "a KVM guest did not reach /init within 30s: TCG (software emulation)"
  return 1
}

# -- the box ----------------------------------------------------------------------------------------------------
box() {
  local file name
  file=$(scripts/lab-box.sh)
  name=$(scripts/lab-box.sh --name)
  if ! vagrant box list 2>/dev/null | grep -q "^$name "; then
    # machines made from an older box cannot start once its volume is gone (their disks are overlays on it)
    in_ns vagrant destroy -f >&2 || true
    forget_boxes
    say "vagrant box add $name"
    vagrant box add --name "$name" "$file" >&2
  fi
  echo "$name"
}

# Boxes of an older recipe: Vagrant's copy and the volume vagrant-libvirt uploaded it to
forget_boxes() {
  local old volume
  for old in $(vagrant box list 2>/dev/null | awk '$1 ~ /^cronframework-lab-/ {print $1}'); do
    vagrant box remove --force --all "$old" >&2 || true
  done
  for volume in $(virsh -q vol-list default 2>/dev/null | awk '$1 ~ /^cronframework-lab-/ {print $1}'); do
    virsh -q vol-delete --pool default "$volume" >/dev/null && say "removed the old box volume $volume"
  done
}

# -- this machine's packages -----------------------------------------------------------------------------------
HOST_PACKAGES=(vagrant vagrant-libvirt libvirt-daemon-system libvirt-clients dnsmasq-base qemu-system-x86 qemu-utils
  debootstrap e2fsprogs python3-venv iproute2)

packages() {
  local need=() pkg
  for pkg in "${HOST_PACKAGES[@]}"; do dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg"); done
  [ ${#need[@]} -gt 0 ] || return 0
  say "apt-get install ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  rm -f /etc/libvirt/qemu/networks/autostart/default.xml  # the package's NAT network: never on this machine
}

# -- commands ---------------------------------------------------------------------------------------------------
lab_env() {
  CF_LAB_BOX=$(box)
  CF_LIBVIRT_DRIVER=$(accel)
  export CF_LAB_BOX CF_LIBVIRT_DRIVER
}

cmd_up() {
  local started
  packages
  namespace
  libvirt
  lab_env
  say "vagrant up $* (box $CF_LAB_BOX, driver $CF_LIBVIRT_DRIVER)"
  started=$(stamp)
  mkdir -p "$LAB_DIR/logs"
  in_ns vagrant up --provider=libvirt "$@" 2>&1 | timestamped | tee "$LAB_DIR/logs/up.log" >&2
  say "vagrant up took $(since "$started")s (log: $LAB_DIR/logs/up.log)"
}

# Vagrant's output with the seconds since the start on each line (how long boot and provisioning took), without
# its progress bars
timestamped() {
  python3 -u -c '
import sys, time
start = time.monotonic()
for line in sys.stdin:
    for part in line.replace("\r", "\n").splitlines():
        if part.strip() and "Progress: " not in part:
            print(f"[{time.monotonic() - start:5.0f}s] {part}", flush=True)
'
}

cmd_down() {
  if [ -n "$(ns_inode)" ] && daemon_pid libvirtd >/dev/null; then
    in_ns vagrant destroy -f >&2 || true
    local net
    for net in "${NETWORKS[@]}"; do
      virsh -q net-destroy "$net" >/dev/null 2>&1 || true
      virsh -q net-undefine "$net" >/dev/null 2>&1 || true
    done
  fi
  local name pid
  for name in libvirtd virtlogd; do
    pid=$(daemon_pid "$name") || continue
    kill "$pid"
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    say "$name (pid $pid) stopped"
  done
  if [ -n "$(ns_inode)" ]; then
    end_the_rest
    ip netns del "$NETNS"
    say "network namespace $NETNS removed"
  fi
}

# What still runs in the namespace (a guest's QEMU, a network's dnsmasq: both outlive a libvirtd that died) would
# keep running, unnamed, once the namespace is deleted: TERM, then KILL what is left
end_the_rest() {
  local pids signal
  for signal in TERM KILL; do
    pids=$(ip netns pids "$NETNS")
    [ -n "$pids" ] || return 0
    say "SIG$signal to what still runs in $NETNS: $(echo "$pids" | paste -sd' ')"
    # shellcheck disable=SC2086  # a list of pids
    kill -s "$signal" $pids 2>/dev/null || true
    for _ in $(seq 50); do [ -z "$(ip netns pids "$NETNS")" ] && return 0; sleep 0.1; done
  done
}

cmd_status() {
  [ -n "$(ns_inode)" ] && echo "namespace $NETNS: present" || echo "namespace $NETNS: absent"
  daemon_pid libvirtd >/dev/null && echo "libvirtd: pid $(daemon_pid libvirtd)" || echo "libvirtd: not running"
  if daemon_pid libvirtd >/dev/null; then
    virsh -q list --all
    in_ns vagrant status || true
  fi
}

cmd_test() {
  local rc=0
  [ "${CF_LAB_KEEP:-0}" = 1 ] || trap cmd_down EXIT  # whatever happens on the way
  cmd_up
  # the project's virtualenv (scripts/install-deps.sh), as for the rest of the suite
  in_ns env PYTHONPATH="$REPO" "${CF_LAB_PYTHON:-$REPO/.venv/bin/python}" -m integration.lab "$@" || rc=$?
  return "$rc"
}

# What a booted, unprovisioned guest must already offer: its lab address, password-less sudo, the synced project,
# the offline pip configuration and the tools provision.sh --check looks for
SMOKE_CHECKS='
echo "kernel $(uname -r)"
echo "system $(systemctl is-system-running || true)"
echo "eth1 $(ip -4 -o addr show eth1 | awk "{print \$4}")"
sudo -n true && echo "sudo ok"
cd /cronframework && scripts/provision.sh --check
echo "wheels $(ls /var/cache/cronframework/wheels | wc -l)"
echo "nomad $(ls /var/cache/cronframework/bin)"
'

cmd_smoke() {
  local node=${1:-cf3} started rc=0
  started=$(stamp)
  trap cmd_down EXIT  # whatever happens on the way
  cmd_up "$node" --no-provision
  say "$node booted and answering in $(since "$started")s"
  in_ns vagrant ssh "$node" -c "$SMOKE_CHECKS" || rc=$?
  say "smoke test of $node: $(since "$started")s to boot and check, exit status $rc"
  return "$rc"
}

cmd_run() {
  namespace
  libvirt
  lab_env
  in_ns "$@"
}

main() {
  [ "$(id -u)" = 0 ] || { say "needs root (network namespace, libvirtd)"; exit 1; }
  mkdir -p "$LAB_DIR" "$CF_LAB_CONSOLE_DIR"
  local command=${1:-}
  shift || true
  case "$command" in
    up) cmd_up "$@" ;;
    down) cmd_down ;;
    test) cmd_test "$@" ;;
    status) cmd_status ;;
    smoke) cmd_smoke "$@" ;;
    packages) packages ;;
    accel) accel ;;
    run) cmd_run "$@" ;;
    *) sed -n '2,14p' "$0" >&2; exit 2 ;;
  esac
}

[ "${BASH_SOURCE[0]}" != "$0" ] || main "$@"  # sourced (by its tests), it only defines
