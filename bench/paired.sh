#!/usr/bin/env bash
# Paired runs of two or more mc-service binaries, one right after the other, to tell a
# change of a few per cent from the host's drift (bench/README.md, "Paired runs of two
# builds"). Each run starts the binary on one shard pinned to CPU 0, runs mc-loadgen
# pinned to CPU 1, and prints one line:
#
#   echo:   run binary server-µs-per-round-trip of-it-user-space %steal round-trips/s metrics-µs
#   fanout: run binary server-µs-per-delivery   of-it-user-space %steal server-fan-out-p99-ms metrics-µs
#
# The server's CPU comes from /proc/PID/stat; metrics-µs is the same figure from the
# server's own process_cpu_seconds_total at /metrics (n/a when it exports none).
#
#   bench/paired.sh echo 100 8 6 target/ab/mc-service-OLD target/release/mc-service
#   bench/paired.sh echo 10 1 4 A B          # SESSIONS WINDOW PAIRS BINARY...
#   bench/paired.sh fanout 10 6 A B          # RATE (mutes/s) PAIRS BINARY...
#
# Swap the binaries' order for half the pairs (a second call) so that a drift of the
# host falls on both. Needs target/release/mc-loadgen (cargo build --release -p mc-bench).
set -euo pipefail
cd "$(dirname "$0")/.."

usage() {
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
    exit 2
}

[ $# -ge 1 ] || usage
op=$1
shift
case "$op" in
echo)
    [ $# -ge 4 ] || usage
    sessions=$1 window=$2 pairs=$3
    shift 3
    load=(--warmup 2 --duration 6)
    ;;
fanout)
    [ $# -ge 3 ] || usage
    rate=$1 pairs=$2
    shift 2
    load=(--warmup 10 --duration 10)
    ;;
*) usage ;;
esac
for bin in "$@"; do
    [ -x "$bin" ] || { echo "paired.sh: $bin is not an executable" >&2; exit 2; }
done
loadgen=target/release/mc-loadgen
[ -x "$loadgen" ] || { echo "paired.sh: build $loadgen first (cargo build --release -p mc-bench)" >&2; exit 2; }

work=$(mktemp -d)
server=
cleanup() {
    [ -n "$server" ] && kill -9 "$server" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

for run in $(seq "$pairs"); do
    for bin in "$@"; do
        # The killed server's sockets close when the kernel tears down its io_uring
        # rings, which can be a moment after the process is reaped: wait for the ports.
        for _ in $(seq 100); do
            [ -z "$(ss -Hlnut '( sport = :14533 or sport = :18533 )')" ] && break
            sleep 0.1
        done
        dev=$(mktemp -d -p "$work")
        taskset -c 0 "$bin" --dev --enable-echo --shards 1 --dev-dir "$dev" \
            --webtransport-bind-address 127.0.0.1:14533 --http-bind-address 127.0.0.1:18533 \
            --log-filter warn --capacity 100000 --max-sessions-per-ip 1000000 \
            --max-participants-per-meeting 2000 --drain-timeout-secs 1 >"$work/server.log" 2>&1 &
        server=$!
        for _ in $(seq 50); do
            curl -sf http://127.0.0.1:18533/ready >/dev/null && break
            sleep 0.1
        done
        common=(--progress 0 --json "$work/report.json" "${load[@]}" --server-pid "$server"
            --server-metrics http://127.0.0.1:18533/metrics --threads 1)
        if [ "$op" = echo ]; then
            args=(echo --target https://127.0.0.1:14533/echo --dev-dir "$dev"
                --sessions "$sessions" --window "$window" --size 64)
        else
            args=(meeting --target https://127.0.0.1:14533/ --dev-dir "$dev" --sizes 1x1000
                --mix mute=100 --rate "$rate" --join-timeout 120 --drain 30)
        fi
        if ! taskset -c 1 "$loadgen" "${common[@]}" "${args[@]}" >"$work/loadgen.log" 2>&1; then
            echo "paired.sh: run $run of $bin failed; mc-loadgen's last lines:" >&2
            tail -n 20 "$work/loadgen.log" >&2
            if ! kill -0 "$server" 2>/dev/null; then
                wait "$server" && status=0 || status=$?
                echo "paired.sh: the server had exited (status $status); its last lines:" >&2
            else
                echo "paired.sh: the server was still running; its last lines:" >&2
            fi
            tail -n 20 "$work/server.log" >&2
            exit 1
        fi
        python3 - "$work/report.json" "$run" "$bin" "$op" <<'PY'
import json, sys
w = json.load(open(sys.argv[1]))["window"]
s = w["server"][0]
if sys.argv[4] == "echo":
    last = "%d" % w["ops_per_s"]
else:
    h = (w.get("server_histograms") or {}).get("mc_fanout_duration_seconds") or {}
    last = "%.1f" % (1000 * h["p99_s"]) if "p99_s" in h else "n/a"
m = [x for x in w["server"] if x["source"].startswith("http")]
metrics = "%.3f" % m[0]["us_per_op"] if m else "n/a"
print(sys.argv[2], sys.argv[3], "%.3f %.3f %.1f" % (s["us_per_op"], s["user_us_per_op"], s.get("steal_pct", 0)), last, metrics)
PY
        kill -9 "$server" 2>/dev/null || true
        wait "$server" 2>/dev/null || true
        server=
    done
done
