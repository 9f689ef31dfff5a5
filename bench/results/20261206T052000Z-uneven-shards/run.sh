#!/usr/bin/env bash
# What mc-loadgen's report says about shards the load missed. A two-shard mc-service
# takes echo load (10 s, 2 in flight per session): first 4 sessions on one client socket
# (the default --sessions-per-endpoint 8), then 32 sessions on 32 sockets
# (--sessions-per-endpoint 1). The reports go to one-socket.txt / many-sockets.txt.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here/../../.."
work=$(mktemp -d)
server=
cleanup() {
    [ -n "$server" ] && kill -9 "$server" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
target/release/mc-service --dev --enable-echo --shards 2 --dev-dir "$work/dev" \
    --webtransport-bind-address 127.0.0.1:14533 --http-bind-address 127.0.0.1:18533 \
    --log-filter warn --max-sessions-per-ip 1000000 >"$work/server.log" 2>&1 &
server=$!
for _ in $(seq 50); do
    curl -sf http://127.0.0.1:18533/ready >/dev/null && break
    sleep 0.1
done
run() { # name, sessions, sessions per endpoint
    target/release/mc-loadgen --progress 0 --threads 2 --warmup 2 --duration 10 \
        --server-pid "$server" --server-metrics http://127.0.0.1:18533/metrics \
        echo --target https://127.0.0.1:14533/echo --dev-dir "$work/dev" \
        --sessions "$2" --window 2 --sessions-per-endpoint "$3" >"$here/$1.txt" 2>&1
}
run one-socket 4 8
run many-sockets 32 1
