#!/usr/bin/env bash
# Where mc-service's extra CPU goes when each echo session has a client socket of its
# own (as a browser's does) instead of sharing one with 7 others (mc-loadgen's default).
# For each of --sessions-per-endpoint 8 and 1: a fresh one-shard server pinned to CPU 0,
# echo 100 × 8 from mc-loadgen pinned to CPU 1 for 10 s after 2 s of warm-up, and
# `perf record -g` of the server for 5 s inside that window. Writes spe<N>.txt (the
# load generator's report), profile-spe<N>.txt (perf's split by binary and the top
# symbols by self time) and, from both, diff.txt (diff.py: each symbol's server CPU per
# round trip, in ns, and how much it grew). Needs target/release/{mc-service,mc-loadgen}
# and perf (Debian: linux-perf).
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
for spe in 8 1; do
    taskset -c 0 target/release/mc-service --dev --enable-echo --shards 1 --dev-dir "$work/dev" \
        --webtransport-bind-address 127.0.0.1:14533 --http-bind-address 127.0.0.1:18533 \
        --log-filter warn --max-sessions-per-ip 1000000 >"$work/server.log" 2>&1 &
    server=$!
    for _ in $(seq 50); do
        curl -sf http://127.0.0.1:18533/ready >/dev/null && break
        sleep 0.1
    done
    taskset -c 1 target/release/mc-loadgen --progress 0 --warmup 2 --duration 10 \
        --server-pid "$server" echo --target https://127.0.0.1:14533/echo --dev-dir "$work/dev" \
        --sessions 100 --window 8 --size 64 --sessions-per-endpoint "$spe" >"$here/spe$spe.txt" 2>&1 &
    loadgen=$!
    sleep 5
    perf record -o "$work/perf-$spe.data" -F 1999 -g -p "$server" -- sleep 5 >/dev/null 2>&1
    wait "$loadgen"
    kill -9 "$server"
    wait "$server" 2>/dev/null || true
    server=
    {
        echo "# perf report --no-children --sort dso (share of the server's samples by binary)"
        perf report -i "$work/perf-$spe.data" --no-children --stdio -g none --sort dso 2>/dev/null | grep %
        echo "# perf report --no-children --sort sym (self time; binary names vary by build)"
        perf report -i "$work/perf-$spe.data" --no-children --stdio -g none --sort sym 2>/dev/null | grep % | awk 'NR <= 200'
    } >"$here/profile-spe$spe.txt"
    # Wait until the killed server's ports are released (ss lists none) before the next
    # server binds them.
    for _ in $(seq 100); do
        [ -z "$(ss -Hlnut '( sport = :14533 or sport = :18533 )')" ] && break
        sleep 0.1
    done
done
python3 "$here/diff.py" "$here" >"$here/diff.txt"
