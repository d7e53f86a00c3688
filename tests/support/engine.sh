#!/usr/bin/env bash
# Make a Docker engine, the compose CLI, busybox and tmux available, idempotently:
# install only what is missing, start dockerd only when it is not answering.
# Exits non-zero when the engine cannot be brought up (CI must fail, not skip).
set -euo pipefail

need=()
command -v dockerd >/dev/null 2>&1 || need+=(docker.io)
command -v docker >/dev/null 2>&1 || need+=(docker.io)
command -v docker-compose >/dev/null 2>&1 || docker compose version >/dev/null 2>&1 || need+=(docker-compose)
[ -x /bin/busybox ] || need+=(busybox-static)
command -v tmux >/dev/null 2>&1 || need+=(tmux)
if [ ${#need[@]} -gt 0 ]; then
    echo "engine.sh: installing ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${need[@]}" >/dev/null
fi

if ! docker info >/dev/null 2>&1; then
    echo "engine.sh: starting dockerd"
    log=${DOCKERD_LOG:-/var/log/ferryman-dockerd.log}
    nohup dockerd >"$log" 2>&1 &
    for _ in $(seq 1 60); do
        docker info >/dev/null 2>&1 && break
        sleep 0.5
    done
    if ! docker info >/dev/null 2>&1; then
        echo "engine.sh: dockerd did not come up; last lines of $log:" >&2
        tail -20 "$log" >&2 || true
        exit 1
    fi
fi
echo "engine.sh: $(docker version --format 'Docker engine {{.Server.Version}} (API {{.Server.APIVersion}})')"
