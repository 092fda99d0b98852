#!/usr/bin/env bash
# Build cronframework-test:latest, the image the Docker integration tests and benchmarks run, without any
# registry: `docker import` of a rootfs holding Debian's statically linked busybox and one symlink per applet
# (sh, echo, sleep, cat, env, true, false, head, tail, ...). Idempotent: does nothing when the tag exists.
# Needs a running daemon (scripts/dockerd.sh).
set -euo pipefail

IMAGE=${CRONFRAMEWORK_TEST_IMAGE:-cronframework-test:latest}
BUSYBOX=/bin/busybox

say() { echo "test-image.sh: $*" >&2; }

if docker image inspect "$IMAGE" >/dev/null 2>&1; then
  say "$IMAGE already present"
  exit 0
fi

# busybox-static, not busybox: the image has no libc, so the binary must be statically linked.
if ! dpkg -s busybox-static >/dev/null 2>&1; then
  say "installing busybox-static"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y busybox-static >&2 || { apt-get update && apt-get install -y busybox-static >&2; }
fi

rootfs=$(mktemp -d)
trap 'rm -rf "$rootfs"' EXIT
mkdir -p "$rootfs"/{bin,etc,tmp,proc,sys,dev,work}
chmod 1777 "$rootfs/tmp"
cp "$BUSYBOX" "$rootfs/bin/busybox"
for applet in $("$BUSYBOX" --list); do
  [[ $applet == busybox ]] || ln -sf busybox "$rootfs/bin/$applet"
done
printf 'root:x:0:0:root:/:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$rootfs/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$rootfs/etc/group"

tar -C "$rootfs" -c . | docker import \
  --change 'ENV PATH=/bin' \
  --change 'CMD ["/bin/sh"]' \
  --change 'LABEL org.cronframework.test-image=busybox-static' \
  - "$IMAGE" >/dev/null
say "built $IMAGE from $BUSYBOX ($(docker image inspect "$IMAGE" --format '{{.Size}}') bytes)"
