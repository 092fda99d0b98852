#!/usr/bin/env bash
# QEMU for the lab's emulated guests (the Vagrantfile's libvirt emulator_path when CF_LIBVIRT_DRIVER=qemu): libvirt's
# `-accel tcg` given a translation cache of 256 MiB instead of QEMU's default 1 GiB, which an emulated guest running
# Java and Python fills in time, so that three guests stay within about 5 GiB. (libvirt 9 has the setting,
# <tcg><tb-cache>, but vagrant-libvirt does not pass it.) Every other argument goes to QEMU unchanged.
set -euo pipefail
args=()
previous=""
for arg in "$@"; do
  if [ "$previous" = -accel ] && [ "$arg" = tcg ]; then
    arg=tcg,tb-size=256
  fi
  args+=("$arg")
  previous=$arg
done
exec /usr/bin/qemu-system-x86_64 "${args[@]}"
