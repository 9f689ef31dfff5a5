#!/usr/bin/env bash
# What the work a server does above the kernel costs under echo 10 x 1, wake-ups
# included. Each sitting runs echo 10 x 1 (mc-loadgen --sessions 10 --window 1 --size
# 64, 10 s) against the tokio/quinn peer and against mc-service (one shard), then the
# same datagrams in plain UDP paced to the peer's round trips per second, with the plain
# server spending 0 to 3 us of busy work on each datagram before it answers
# (udp-floor --echo --server-work-ns; ascending in odd sittings, descending in even
# ones). Server on CPU 0, clients on CPU 1. One line per run in runs.txt:
#   sitting server work-ns us-per-round-trip user-us-per-round-trip round-trips/s steal%
# summarise.py turns runs.txt into summary.md.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here/../../.."
sittings=${1:-4}
out="$here/runs.txt"
: >"$out"
work=$(mktemp -d)
server=
cleanup() {
    [ -n "$server" ] && kill -9 "$server" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
ports_free() {
    for _ in $(seq 100); do
        [ -z "$(ss -Hlnut '( sport = :14533 or sport = :18533 )')" ] && return
        sleep 0.1
    done
}
loadgen() { # name, extra mc-loadgen options...: one line into $work/line, server stopped
    local name=$1
    shift
    taskset -c 1 target/release/mc-loadgen --progress 0 --json "$work/$name.json" \
        --warmup 2 --duration 10 --server-pid "$server" "$@" \
        echo --target https://127.0.0.1:14533/echo --dev-dir "$work/dev" \
        --sessions 10 --window 1 --size 64 >"$work/$name.log" 2>&1
    kill -9 "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
    server=
    python3 - "$work/$name.json" >"$work/line" <<'PY'
import json, sys
w = json.load(open(sys.argv[1]))["window"]
s = w["server"][0]
print("%.3f %.3f %d %.1f" % (s["us_per_op"], s["user_us_per_op"], w["ops_per_s"], s.get("steal_pct", 0)))
PY
}
for sitting in $(seq "$sittings"); do
    ports_free
    taskset -c 0 target/release/mc-service --dev --enable-echo --shards 1 --dev-dir "$work/dev" \
        --webtransport-bind-address 127.0.0.1:14533 --http-bind-address 127.0.0.1:18533 \
        --log-filter warn --capacity 100000 --max-sessions-per-ip 1000000 \
        --drain-timeout-secs 1 >"$work/server.log" 2>&1 &
    server=$!
    for _ in $(seq 50); do
        curl -sf http://127.0.0.1:18533/ready >/dev/null && break
        sleep 0.1
    done
    loadgen mc --server-metrics http://127.0.0.1:18533/metrics
    echo "$sitting mc-service - $(cat "$work/line")" | tee -a "$out"
    ports_free
    taskset -c 0 target/release/wt-echo-server --bind 127.0.0.1:14533 \
        --cert "$work/dev/cert.pem" --key "$work/dev/key.pem" >"$work/peer.log" 2>&1 &
    server=$!
    sleep 1
    loadgen peer
    echo "$sitting peer - $(cat "$work/line")" | tee -a "$out"
    pace=$(cut -d' ' -f3 "$work/line")
    works="0 500 1000 1500 2000 2500 3000"
    [ $((sitting % 2)) -eq 0 ] && works="3000 2500 2000 1500 1000 500 0"
    for w in $works; do
        target/release/udp-floor --echo --clients 10 --requests-per-s "$pace" \
            --server-work-ns "$w" --warmup 2 --duration 10 --server-cpu 0 --client-cpu 1 \
            --json "$work/floor.json" >/dev/null
        python3 - "$work/floor.json" "$sitting" "$w" <<'PY' | tee -a "$out"
import json, sys
r = json.load(open(sys.argv[1]))
print(sys.argv[2], "udp-floor", sys.argv[3], "%.3f - %d %.1f" % (
    r["us_per_delivery"], r["deliveries"] / r["window_s"], r.get("server_steal_pct") or 0))
PY
    done
done
