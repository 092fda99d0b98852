#!/usr/bin/env bash
# Refresh requirements/test.lock, the exact versions (with their hashes) that the test command and CI install.
#
#   scripts/lock.sh             re-resolve after a change to pyproject.toml's dependencies, keeping every pin that
#                               still fits
#   scripts/lock.sh --upgrade   move every pin to the newest release pyproject.toml's ranges allow
#   scripts/lock.sh -P NAME     move one package (uv pip compile's --upgrade-package); any uv pip compile flag passes
#
# Then run scripts/test.sh and commit the lock with the code it was tested with.
set -euo pipefail
cd "$(dirname "$0")/.."

UV_VERSION=0.13.9  # pinned so the lock's layout does not change with the tool
TOOLS=.venv-tools

if [ "$("$TOOLS/bin/uv" --version 2>/dev/null | cut -d' ' -f2)" != "$UV_VERSION" ]; then
  python3 -m venv --clear "$TOOLS"
  "$TOOLS/bin/python" -m pip install -q --disable-pip-version-check "uv==$UV_VERSION"
fi
# --universal: one lock for every platform and Python >= 3.11 (markers where they differ); 3.11 is the oldest
# the project supports and what CI runs
"$TOOLS/bin/uv" pip compile pyproject.toml --extra test --universal --python-version 3.11 --generate-hashes \
  --custom-compile-command scripts/lock.sh --quiet -o requirements/test.lock "$@"
echo "lock: requirements/test.lock; now run scripts/test.sh" >&2
