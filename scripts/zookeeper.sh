#!/usr/bin/env bash
# Install Debian's ZooKeeper (and a Java runtime) for the integration tests and benchmarks, when missing.
# The servers themselves are started per test run by integration/zk.py; nothing is started here.
set -euo pipefail

if [ -f /usr/share/java/zookeeper.jar ] && command -v java >/dev/null 2>&1; then
    exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq || true
$SUDO apt-get install -y -qq zookeeper
