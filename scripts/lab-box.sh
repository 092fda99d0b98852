#!/usr/bin/env bash
# Build the Vagrant box the lab boots (provider libvirt) from Debian packages only: no box or image is downloaded.
#
#   scripts/lab-box.sh            build it unless the cached one has the same recipe; print the .box file's path
#   scripts/lab-box.sh --recipe   print the recipe's hash and what it covers; build nothing
#   scripts/lab-box.sh --name     print the box name Vagrant knows it by (cronframework-lab-<hash>)
#
# The recipe: debootstrap of Debian bookworm into a directory, then in a chroot every package the provisioning's
# scripts would install (scripts/install-deps.sh's list, zookeeper.sh's, dockerd.sh's, test-image.sh's), the kernel
# and its initramfs, the user `vagrant` with Vagrant's insecure key (Vagrant swaps it for a key of its own at the
# first `vagrant up`) and password-less sudo. The guests are offline (their network exists only inside the lab's
# namespace), so what provisioning fetches elsewhere is put in the box too: a wheelhouse of requirements/test.lock
# (hash-checked, as install-deps.sh installs it) plus the project's build requirements, which /etc/pip.conf points
# pip at; and the Nomad binary `scripts/nomad.sh install` built on this machine, at the path the guest's nomad.sh
# looks for. The root file system is an ext4 image made from the directory without mounting it (mkfs.ext4 -d),
# converted to qcow2; the kernel and initrd travel in the box and are booted directly (no boot loader).
#
# Cached in $CF_LAB_DIR/box/<hash>/ (default /var/lib/cronframework-lab); the hash covers this script, the package
# lists it reads, the lock, pyproject.toml and the Nomad version, so a change to any of them builds a new box.
# Needs root, debootstrap, e2fsprogs (mkfs.ext4 -d), qemu-utils, and the Debian mirror.
set -euo pipefail
shopt -s inherit_errexit
REPO=$(cd "$(dirname "$0")/.." && pwd)
cd "$REPO"

LAB_DIR=${CF_LAB_DIR:-/var/lib/cronframework-lab}
MIRROR=${CF_LAB_MIRROR:-http://deb.debian.org/debian}
SUITE=bookworm
GUEST_CACHE=/var/cache/cronframework  # CRONFRAMEWORK_CACHE in the guests (the Vagrantfile passes it)
DISK_SIZE=12G                         # virtual: the guests' overlays grow into it; the image holds only the data
# what the box needs beyond the provisioning scripts' own packages: boot, systemd, ssh, Vagrant's synced folder;
# apparmor for dockerd (Debian's kernel has AppArmor on, and dockerd cannot start a container without the parser)
BASE_PACKAGES="systemd-sysv udev dbus openssh-server sudo rsync iproute2 procps netbase ca-certificates curl
  linux-image-amd64 initramfs-tools less apparmor"

say() { echo "lab-box: $*" >&2; }

# The packages the provisioning scripts install when missing (guests cannot fetch them): read from the scripts
# themselves, so the box follows them.
provisioning_packages() {
  local deps
  deps=$(sed -n 's/^for pkg in \(.*\); do$/\1/p' scripts/install-deps.sh)
  [ -n "$deps" ] || { say "cannot read the package list of scripts/install-deps.sh"; exit 1; }
  # each once (install-deps.sh may already name the other scripts' packages)
  echo "$deps zookeeper docker.io busybox-static" | tr -s ' ' '\n' | awk 'NF && !seen[$0]++' | paste -sd' '
}

nomad_version() { sed -n 's/^NOMAD_VERSION="\${NOMAD_VERSION:-\(.*\)}"$/\1/p' scripts/nomad.sh; }

build_requirements() {
  python3 -c 'import sys, tomllib; print("\n".join(tomllib.load(open(sys.argv[1], "rb"))["build-system"]["requires"]))' \
    pyproject.toml
}

recipe() {
  echo "suite $SUITE"
  echo "base $BASE_PACKAGES" | tr -s ' \n' ' '; echo
  echo "provisioning $(provisioning_packages)"
  echo "build-requirements $(build_requirements | paste -sd' ')"
  echo "nomad $(nomad_version)"
  echo "lock $(sha256sum requirements/test.lock | cut -c1-16)"
  echo "script $(sha256sum "$0" | cut -c1-16)"
}

recipe_hash() { recipe | sha256sum | cut -c1-12; }

# -- the root file system ---------------------------------------------------------------------------------------
# Everything in the chroot runs in a mount namespace of its own: /proc, /sys and /dev vanish with it, even when the
# build dies half way.
in_chroot() { unshare --mount --propagation private bash -c '
  set -e; root=$1; shift
  mount -t proc proc "$root/proc"; mount -t sysfs sys "$root/sys"; mount --rbind /dev "$root/dev"
  chroot "$root" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root DEBIAN_FRONTEND=noninteractive "$@"
' in_chroot "$ROOTFS" "$@"; }

bootstrap() {
  say "debootstrap $SUITE from $MIRROR"
  debootstrap --variant=minbase "$SUITE" "$ROOTFS" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 \
    || { tail -20 "$WORK/debootstrap.log" >&2; exit 1; }
  printf '#!/bin/sh\nexit 101\n' >"$ROOTFS/usr/sbin/policy-rc.d"  # nothing starts in the chroot
  chmod +x "$ROOTFS/usr/sbin/policy-rc.d"
  # shellcheck disable=SC2046  # word lists on purpose
  say "apt-get install $(echo $BASE_PACKAGES $(provisioning_packages) | wc -w) packages (and their dependencies)"
  # shellcheck disable=SC2046
  in_chroot apt-get install -y -q --no-install-recommends $BASE_PACKAGES $(provisioning_packages) \
    >"$WORK/apt.log" 2>&1 || { tail -30 "$WORK/apt.log" >&2; exit 1; }
}

wheelhouse() {
  # downloaded by this machine's pip (same Debian, same Python, its own certificate settings), not the chroot's
  say "wheelhouse: requirements/test.lock and the build requirements"
  local wheels=$ROOTFS$GUEST_CACHE/wheels
  mkdir -p "$wheels"
  python3 -m venv "$WORK/pip"
  local pip=("$WORK/pip/bin/python" -m pip --disable-pip-version-check -q)
  {
    "${pip[@]}" download --require-hashes -r requirements/test.lock -d "$wheels"
    build_requirements | "${pip[@]}" download -r /dev/stdin -d "$wheels"
  } >"$WORK/pip.log" 2>&1 || { tail -20 "$WORK/pip.log" >&2; exit 1; }
  rm -rf "$WORK/pip"
  if ls "$wheels" | grep -v '\.whl$' >&2; then
    say "the files above are not wheels: the guests could not build them offline"; exit 1
  fi
  printf '[global]\nno-index = true\nfind-links = %s/wheels\n' "$GUEST_CACHE" >"$ROOTFS/etc/pip.conf"
}

nomad_binary() {
  local bin
  bin=$(scripts/nomad.sh install | tail -1)
  mkdir -p "$ROOTFS$GUEST_CACHE/bin"
  cp "$bin" "$ROOTFS$GUEST_CACHE/bin/$(basename "$bin")"
}

configure() {
  say "configuring: user vagrant, ssh, network, serial console"
  local key
  key=$(ls /usr/share/rubygems-integration/all/gems/vagrant-*/keys/vagrant.pub 2>/dev/null | head -1)
  [ -n "$key" ] || { say "Vagrant's insecure public key not found (is Debian's vagrant installed?)"; exit 1; }
  in_chroot useradd --create-home --shell /bin/bash vagrant
  install -d -m 700 -o 1000 -g 1000 "$ROOTFS/home/vagrant/.ssh"
  install -m 600 -o 1000 -g 1000 "$key" "$ROOTFS/home/vagrant/.ssh/authorized_keys"
  echo 'vagrant ALL=(ALL) NOPASSWD: ALL' >"$ROOTFS/etc/sudoers.d/vagrant"
  chmod 440 "$ROOTFS/etc/sudoers.d/vagrant"
  echo cf-lab >"$ROOTFS/etc/hostname"
  printf '127.0.0.1\tlocalhost\n127.0.1.1\tcf-lab\n' >"$ROOTFS/etc/hosts"
  echo '/dev/vda / ext4 defaults,errors=remount-ro 0 1' >"$ROOTFS/etc/fstab"
  : >"$ROOTFS/etc/resolv.conf"  # no name server in the lab; Vagrant's guest steps need none
  # eth0 (net.ifnames=0 on the kernel command line) is the management network; Vagrant configures eth1 itself
  printf '[Match]\nName=eth0\n\n[Network]\nDHCP=ipv4\n' >"$ROOTFS/etc/systemd/network/99-lab-eth0.network"
  in_chroot systemctl enable systemd-networkd >/dev/null 2>&1
  # each VM its own identity: machine-id and ssh host keys made at first boot
  # (systemd falls back to dbus's copy when /etc/machine-id is empty: every VM would share the one made here, and
  # with it the DHCP client id, so the management network would hand them all one address)
  : >"$ROOTFS/etc/machine-id"
  ln -sf /etc/machine-id "$ROOTFS/var/lib/dbus/machine-id"
  rm -f "$ROOTFS"/etc/ssh/ssh_host_*
  mkdir -p "$ROOTFS/etc/systemd/system/ssh.service.d"
  printf '[Service]\nExecStartPre=\nExecStartPre=/usr/bin/ssh-keygen -A\nExecStartPre=/usr/sbin/sshd -t\n' \
    >"$ROOTFS/etc/systemd/system/ssh.service.d/lab-keys.conf"
  # offline guests: no apt timers; nothing else periodic competing for an emulated CPU
  in_chroot systemctl disable apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer fstrim.timer \
    man-db.timer >/dev/null 2>&1 || true
  # dockerd is started by scripts/dockerd.sh, with its options, as on CI; not by the package's units at boot
  in_chroot systemctl disable docker.service docker.socket containerd.service >/dev/null 2>&1 || true
  # the journal on disk, so a VM's logs outlive a `virsh destroy` up to its last sync
  mkdir -p "$ROOTFS/var/log/journal"
  rm -f "$ROOTFS/usr/sbin/policy-rc.d"
  in_chroot apt-get clean
  rm -rf "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/tmp/* "$ROOTFS"/var/tmp/*
}

# -- the image and the box --------------------------------------------------------------------------------------
image() {
  local kernel initrd
  kernel=$(ls "$ROOTFS"/boot/vmlinuz-* | sort -V | tail -1)
  initrd=$(ls "$ROOTFS"/boot/initrd.img-* | sort -V | tail -1)
  mkdir -p "$WORK/box"
  cp "$kernel" "$WORK/box/vmlinuz"
  cp "$initrd" "$WORK/box/initrd.img"
  say "ext4 image from the directory ($(du -sh "$ROOTFS" | cut -f1)), no mount"
  mkfs.ext4 -q -L cf-lab -d "$ROOTFS" "$WORK/root.raw" "$DISK_SIZE" >"$WORK/mkfs.log" 2>&1 \
    || { cat "$WORK/mkfs.log" >&2; exit 1; }
  qemu-img convert -O qcow2 "$WORK/root.raw" "$WORK/box/box.img"
  rm -f "$WORK/root.raw"
  local bytes
  bytes=$(qemu-img info --output=json "$WORK/box/box.img" | python3 -c 'import json,sys; print(json.load(sys.stdin)["virtual-size"])')
  printf '{"provider": "libvirt", "format": "qcow2", "virtual_size": %d}\n' $((bytes / 1024 / 1024 / 1024)) \
    >"$WORK/box/metadata.json"
  # the box's own Vagrantfile: boot the kernel and initrd that came with it, straight into the image
  cat >"$WORK/box/Vagrantfile" <<'EOF'
Vagrant.configure("2") do |config|
  config.vm.provider :libvirt do |libvirt|
    libvirt.kernel = File.join(__dir__, "vmlinuz")
    libvirt.initrd = File.join(__dir__, "initrd.img")
    libvirt.cmd_line = "root=/dev/vda rw console=ttyS0 net.ifnames=0 quiet"
  end
end
EOF
  tar -C "$WORK/box" -cf "$WORK/cronframework-lab.box" metadata.json Vagrantfile box.img vmlinuz initrd.img
  mv "$WORK/box/vmlinuz" "$WORK/box/initrd.img" "$WORK/"  # kept beside the box: scripts/lab.sh probes KVM with them
  rm -rf "$WORK/box"
}

build() {
  local started=$SECONDS dest=$1
  WORK=$(mktemp -d "$LAB_DIR/box/build.XXXXXX")
  ROOTFS=$WORK/root
  trap 'rm -rf "$WORK"' EXIT
  bootstrap
  wheelhouse
  nomad_binary
  configure
  image
  {
    recipe
    echo "built $(date -u +%FT%TZ) in $((SECONDS - started))s"
    echo "box $(stat -c %s "$WORK/cronframework-lab.box") bytes"
  } >"$WORK/recipe.txt"
  rm -rf "$ROOTFS"
  mv "$WORK/vmlinuz" "$WORK/initrd.img" "$WORK/recipe.txt" "$WORK"/*.log "$dest/"
  mv "$WORK/cronframework-lab.box" "$dest/"  # last: its presence says the build is complete
  say "built in $((SECONDS - started))s: $dest/cronframework-lab.box ($(du -h "$dest/cronframework-lab.box" | cut -f1))"
}

main() {
  case "${1:-}" in
    --recipe) recipe; echo "hash $(recipe_hash)"; return ;;
    --name) echo "cronframework-lab-$(recipe_hash)"; return ;;
    "") ;;
    *) say "usage: $0 [--recipe|--name]"; return 2 ;;
  esac
  [ "$(id -u)" = 0 ] || { say "needs root (debootstrap, chroot)"; exit 1; }
  local dest
  dest=$LAB_DIR/box/$(recipe_hash)
  if [ ! -f "$dest/cronframework-lab.box" ]; then
    mkdir -p "$LAB_DIR/box"  # a machine that never built one has no cache to clear
    find "$LAB_DIR/box" -mindepth 1 -maxdepth 1 ! -name "$(basename "$dest")" -exec rm -rf {} +  # older recipes
    mkdir -p "$dest"
    build "$dest"
  fi
  echo "$dest/cronframework-lab.box"
}

main "$@"
