#!/usr/bin/env bash
# Everything the test suite needs on a fresh Debian machine: OS packages, then the project and its test extras in a
# virtualenv of its own, so nothing depends on what the machine's site-packages happen to hold.
#
#   CRONFRAMEWORK_VENV   the virtualenv to create or reuse (default: .venv in the repo; a Vagrant node passes
#                        /opt/cronframework/venv)
#   CRONFRAMEWORK_DEPS   "locked" (default): the exact versions in requirements/test.lock, hash-checked;
#                        "latest": the newest releases pyproject.toml's ranges allow, to find drift on purpose
#
# A failed install fails this script, with pip's own error on stderr.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${CRONFRAMEWORK_VENV:-$PWD/.venv}
DEPS=${CRONFRAMEWORK_DEPS:-locked}
LOCK=requirements/test.lock

case "$DEPS" in
  locked|latest) ;;
  *) echo "install-deps: CRONFRAMEWORK_DEPS must be 'locked' or 'latest', not '$DEPS'" >&2; exit 2 ;;
esac

need=()
for pkg in zookeeper docker.io busybox-static chromium ruby vagrant iproute2 nftables e2fsprogs faketime python3 python3-venv; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "install-deps: apt-get install ${need[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need[@]}" >/dev/null
fi

# reuse the virtualenv while its interpreter still runs (a removed or upgraded python3 leaves a dead one behind)
if ! "$VENV/bin/python" -c '' 2>/dev/null; then
  echo "install-deps: creating virtualenv $VENV" >&2
  python3 -m venv --clear "$VENV"
fi
pip=("$VENV/bin/python" -m pip --disable-pip-version-check)
if [ "$DEPS" = latest ]; then
  "${pip[@]}" install -q --upgrade --upgrade-strategy eager -e '.[test]'
else
  "${pip[@]}" install -q --require-hashes -r "$LOCK"
  "${pip[@]}" install -q --no-deps -e .
fi
# the lock and pyproject.toml's ranges must agree: a range the lock no longer satisfies fails here, by name
if ! report=$("${pip[@]}" check); then
  echo "$report" >&2
  echo "install-deps: installed versions break pyproject.toml's ranges; after changing them run scripts/lock.sh" >&2
  exit 1
fi
echo "install-deps: $DEPS dependencies in $VENV" >&2
