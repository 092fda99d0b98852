#!/usr/bin/env bash
# Everything the test suite needs on a fresh Debian machine: OS packages, then the project and its test extras.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
for pkg in zookeeper docker.io busybox-static chromium ruby vagrant iproute2 nftables e2fsprogs; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "install-deps: apt-get install ${need[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need[@]}" >/dev/null
fi
python3 -m pip install -q --disable-pip-version-check -e '.[test]' 2>&1 | grep -v -e 'Running pip as the' -e '^$' || true
