#!/usr/bin/env bash
# The whole test suite, from a fresh machine: install, start services, lint, type-check, run every test.
# ZooKeeper servers and Nomad agents are started by the test fixtures; dockerd and the test image here.
set -euo pipefail
cd "$(dirname "$0")/.."

# the provisioning a Vagrant node runs (Vagrantfile), on this machine: install-deps, zookeeper, dockerd start,
# test image, nomad install -- so CI runs the VMs' provisioning for real, not only its syntax
scripts/provision.sh

ruff check .
ruff format --check .
mypy
python3 -m pytest -q -p no:cacheprovider "$@"
