#!/usr/bin/env bash
# The whole test suite, from a fresh machine: install, start services, lint, type-check, run every test.
# ZooKeeper servers and Nomad agents are started by the test fixtures; dockerd and the test image here.
#
#   scripts/test.sh [PYTEST ARGS]            the locked versions (requirements/test.lock) in .venv
#   scripts/test.sh --latest [PYTEST ARGS]   the newest releases pyproject.toml allows, in .venv-latest
#                                            (the same as CRONFRAMEWORK_DEPS=latest)
#
# The suite runs in the project's own virtualenv, never in whatever python3 or an activated virtualenv holds;
# CRONFRAMEWORK_VENV=DIR picks another one (created if missing, the same versions installed into it).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" = --latest ]; then
  export CRONFRAMEWORK_DEPS=latest
  shift
fi
export CRONFRAMEWORK_DEPS=${CRONFRAMEWORK_DEPS:-locked}
default_venv=.venv
[ "$CRONFRAMEWORK_DEPS" = latest ] && default_venv=.venv-latest
export CRONFRAMEWORK_VENV=${CRONFRAMEWORK_VENV:-$PWD/$default_venv}

# the provisioning a Vagrant node runs (Vagrantfile), on this machine: install-deps, zookeeper, dockerd start,
# test image, nomad install -- so CI runs the VMs' provisioning for real, not only its syntax
scripts/provision.sh

export VIRTUAL_ENV=$CRONFRAMEWORK_VENV
export PATH="$VIRTUAL_ENV/bin:$PATH"
ruff check .
ruff format --check .
mypy
lint-imports  # the layers of docs/design.md (.importlinter)
python -m pytest -q -p no:cacheprovider "$@"
