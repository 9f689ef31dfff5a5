#!/usr/bin/env bash
# mc_shard_cpu_seconds_total against the kernel's own count of each shard thread's CPU.
# A two-shard mc-service takes echo load from mc-loadgen (4 threads, so that sessions
# land on both shards; 16 sessions x 2 in flight, 10 s). Before and after each run,
# with the server idle for 1.5 s (shards publish their counters at least once a second),
# reads.py takes /proc/PID/task/TID/stat (utime, stime in clock ticks) of every thread
# named shard-N-* and the /metrics series; runs.txt gets one line per run and shard:
#   run shard /proc-user-s /proc-system-s metrics-user-s metrics-system-s
# and one per run for the process: run process /proc-s metrics-s (process_cpu_seconds_total).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here/../../.."
runs=${1:-3}
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
: >"$here/runs.txt"
for run in $(seq "$runs"); do
    sleep 1.5
    python3 "$here/reads.py" "$server" >"$work/before"
    target/release/mc-loadgen --progress 0 --threads 4 --warmup 0 --duration 10 \
        echo --target https://127.0.0.1:14533/echo --dev-dir "$work/dev" \
        --sessions 16 --window 2 >"$work/loadgen.log" 2>&1
    sleep 1.5
    python3 "$here/reads.py" "$server" >"$work/after"
    python3 - "$run" "$work/before" "$work/after" <<'PY' | tee -a "$here/runs.txt"
import json, sys
run, a, b = sys.argv[1], json.load(open(sys.argv[2])), json.load(open(sys.argv[3]))
for shard in sorted(b["proc"]):
    d = [b["proc"][shard][i] - a["proc"][shard][i] for i in (0, 1)]
    m = [b["metrics"][shard][i] - a["metrics"][shard][i] for i in (0, 1)]
    print(run, shard, "%.2f %.2f %.6f %.6f" % (d[0], d[1], m[0], m[1]))
print(run, "process", "%.2f %.6f" % (b["process"][0] - a["process"][0], b["process"][1] - a["process"][1]))
PY
done
