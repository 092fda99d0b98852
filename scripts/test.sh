#!/usr/bin/env bash
# The whole test suite, from a fresh machine: install, start services, lint, type-check, run every test.
# ZooKeeper servers and Nomad agents are started by the test fixtures; dockerd and the test image here.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
scripts/zookeeper.sh
scripts/dockerd.sh start
scripts/test-image.sh
scripts/nomad.sh install >/dev/null

ruff check .
ruff format --check .
mypy
python3 -m pytest -q -p no:cacheprovider "$@"
