#!/usr/bin/env bash
# Obtain a Nomad binary (built from the Go module proxy, cached) and run a loopback dev agent.
#
#   scripts/nomad.sh install                 build once, cache, print the binary's path
#   scripts/nomad.sh start DIR [--acl] [--http-port N]
#                                            start `nomad agent -dev` with data + logs in DIR;
#                                            prints the agent address; pid in DIR/nomad.pid
#   scripts/nomad.sh stop DIR                stop the agent started in DIR
#
# No OS package carries Nomad, so the binary is compiled from the github.com/hashicorp/nomad
# module. The module zip lacks its nested api module (go.mod says `replace .../api => ./api`),
# so the replace is pointed at the proxy's api module at the same commit.
set -euo pipefail

NOMAD_VERSION="${NOMAD_VERSION:-v1.11.2}"
# The api module at the commit of the NOMAD_VERSION tag (f876384fe3ab), as a pseudo-version: the proxy does
# not resolve bare commit hashes, so this is spelled out (commit time + 12-hex prefix).
NOMAD_API_VERSION="${NOMAD_API_VERSION:-v0.0.0-20260211190147-f876384fe3ab}"
CACHE_DIR="${CRONFRAMEWORK_CACHE:-$HOME/.cache/cronframework}"
BIN="$CACHE_DIR/bin/nomad-$NOMAD_VERSION"
export PATH="$PATH:/usr/local/go/bin"

log() { echo "nomad.sh: $*" >&2; }

build() {
    command -v go >/dev/null || { log "go toolchain not found (need /usr/local/go/bin/go)"; exit 1; }
    local src started
    started=$(date +%s)
    BUILD_DIR=$(mktemp -d)
    trap 'chmod -R u+w "$BUILD_DIR" 2>/dev/null; rm -rf "$BUILD_DIR"' EXIT
    export GOFLAGS="-p=2 -buildvcs=false" GOTOOLCHAIN=local
    log "downloading github.com/hashicorp/nomad@$NOMAD_VERSION"
    src=$(go mod download -json "github.com/hashicorp/nomad@$NOMAD_VERSION" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')
    cp -r "$src" "$BUILD_DIR/nomad"
    chmod -R u+w "$BUILD_DIR/nomad"
    cd "$BUILD_DIR/nomad"
    go mod edit -replace "github.com/hashicorp/nomad/api=github.com/hashicorp/nomad/api@$NOMAD_API_VERSION"
    log "compiling (several minutes on 2 cores)"
    mkdir -p "$CACHE_DIR/bin"
    CGO_ENABLED=0 go build -mod=mod -trimpath -ldflags "-s -w" -o "$BIN.tmp" . \
        || { log "build failed"; exit 1; }
    mv "$BIN.tmp" "$BIN"
    log "built $BIN in $(($(date +%s) - started))s"
}

cmd_install() {
    [[ -x "$BIN" ]] || build
    echo "$BIN"
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

write_config() {  # DIR ACL HTTP RPC SERF
    local dir=$1 acl=$2
    cat >"$dir/agent.hcl" <<EOF
data_dir  = "$dir/data"
bind_addr = "127.0.0.1"
log_level = "INFO"
ports {
  http = $3
  rpc  = $4
  serf = $5
}
advertise {
  http = "127.0.0.1"
  rpc  = "127.0.0.1"
  serf = "127.0.0.1"
}
acl {
  enabled = $acl
}
client {
  network_interface = "lo"
  cpu_total_compute = 4000
  # cloud fingerprinters probe metadata addresses off this machine (and fail on a custom AWS_CA_BUNDLE)
  options = {
    "fingerprint.denylist" = "env_aws,env_gce,env_azure,env_digitalocean"
  }
}
plugin "raw_exec" {
  config {
    enabled = true
  }
}
EOF
    if [[ -S /var/run/docker.sock ]]; then
        cat >>"$dir/agent.hcl" <<EOF
plugin "docker" {
  config {
    endpoint = "unix:///var/run/docker.sock"
    volumes {
      enabled = true
    }
  }
}
EOF
    fi
}

cmd_start() {
    local dir="" acl=false http=""
    while (($#)); do
        case $1 in
            --acl) acl=true ;;
            --http-port) http=$2; shift ;;
            *) dir=$1 ;;
        esac
        shift
    done
    [[ -n "$dir" ]] || { log "usage: nomad.sh start DIR [--acl] [--http-port N]"; exit 2; }
    mkdir -p "$dir/data"
    dir=$(cd "$dir" && pwd)
    local bin
    bin=$(cmd_install)
    http=${http:-$(free_port)}
    write_config "$dir" "$acl" "$http" "$(free_port)" "$(free_port)"
    echo "http://127.0.0.1:$http" >"$dir/address"
    setsid "$bin" agent -dev -config "$dir/agent.hcl" >"$dir/nomad.log" 2>&1 </dev/null &
    echo $! >"$dir/nomad.pid"
    wait_ready "http://127.0.0.1:$http" "$dir"
    echo "http://127.0.0.1:$http"
}

wait_ready() {  # ADDR DIR: wait for the leader and a ready node (ACL-enabled agents answer 403 = up)
    local addr=$1 dir=$2 deadline=$(($(date +%s) + 60))
    while (($(date +%s) < deadline)); do
        if curl -fs "$addr/v1/status/leader" 2>/dev/null | grep -q 127.0.0.1; then
            return 0
        fi
        kill -0 "$(cat "$dir/nomad.pid")" 2>/dev/null || { log "agent exited; see $dir/nomad.log"; exit 1; }
        sleep 0.3
    done
    log "agent not ready after 60s; see $dir/nomad.log"
    exit 1
}

cmd_stop() {
    local dir=${1:?usage: nomad.sh stop DIR} pid
    [[ -f "$dir/nomad.pid" ]] || return 0
    pid=$(cat "$dir/nomad.pid")
    kill -INT "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.2
    done
    kill -KILL "$pid" 2>/dev/null || true
    rm -f "$dir/nomad.pid"
}

case "${1:-}" in
    install) cmd_install ;;
    start) shift; cmd_start "$@" ;;
    stop) shift; cmd_stop "$@" ;;
    *) log "usage: nomad.sh install | start DIR [--acl] [--http-port N] | stop DIR"; exit 2 ;;
esac
