#!/usr/bin/env bash
# Does the fan-out's server CPU per delivery change when each side pays for its own
# receive path, as on a network?
#
# On loopback the server's CPU runs the whole receive path of every notification it
# sends: its `sendmmsg` delivers each datagram into the client's socket and wakes the
# client. Over a network the clients' machines do that. This script runs the fan-out of
# bench/compare.sh (one meeting of 1,000 participants, mute toggles at RATE a second,
# `mc-loadgen meeting --sizes 1x1000 --mix mute=100`) two ways:
#
#   loopback  mc-service on 127.0.0.1, as bench/compare.sh runs it;
#   veth      mc-service in a network namespace of its own, reached over a veth pair
#             whose two ends steer their receive processing (RPS) to the CPU of the side
#             that receives: the server end to CPU 0, the client end to CPU 1 (the same
#             pair as bench/results/20261206T094604Z-veth-rps/run.sh: 198.18.0.1 the
#             server, 198.18.0.2 the clients, from the range set aside for benchmarks,
#             RFC 2544; no packet leaves this host).
#
# After each fan-out run, the same datagrams in plain UDP with no QUIC and no meeting
# (`udp-floor --clients 1000 --rate RATE`, its server socket in the namespace for veth):
# the kernel's floor for that delivery, as compare.sh measures it after each fan-out run.
#
# Each run: a fresh mc-service pinned to CPU 0, mc-loadgen pinned to CPU 1, 20 s of
# warm-up after the joins, 10 s measured. Each line of runs.txt gives two figures of
# server CPU per delivered notification:
#
#   process  the server process's CPU over mc-loadgen's measured window (its report's
#            figure from /proc/PID/stat; udp-floor's server thread's own for plain);
#   cpu0     all of CPU 0's busy time (/proc/stat: user, nice, system, irq, softirq) over
#            8 s inside that window, which also holds receive processing that runs in
#            interrupt context while the server sleeps and is charged to no process.
#
# and the IPIs (function-call and rescheduling interrupts) CPU 0 and CPU 1 received over
# the same 8 s, per delivery; the server's sleeps (voluntary context switches: all of
# mc-service's threads, udp-floor's server thread) per delivery over the same 8 s; and
# for mc-service, from its own counters over the window, the datagrams it received and
# its recvmmsg calls per delivery and its receive-pause trial's epochs (pausing/all).
# (runs.txt in this directory was written before the last three were added.)
#
# RUNS (default 3), RATES (default "10"), MODES (default "loopback veth"), OUT (default:
# this directory: runs.txt, and summary.txt from summary.py). Needs root, iproute2 and
# target/release/{mc-service,mc-loadgen,udp-floor}.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here/../../.."
RUNS=${RUNS:-3}
RATES=${RATES:-10}
MODES=${MODES:-"loopback veth"}
OUT=${OUT:-$here}
SIZE=1000
WARMUP=20
NS=mcbench-veth
SRV=198.18.0.1
CLI=198.18.0.2
MC=target/release/mc-service
LG=target/release/mc-loadgen
FLOOR=target/release/udp-floor
for b in "$MC" "$LG" "$FLOOR"; do
    [[ -x $b ]] || { echo "run.sh: $b is missing" >&2; exit 2; }
done
# shellcheck source=../../scripts/lib.sh
source bench/scripts/lib.sh

work=$(mktemp -d)
server=
loadgen=
cleanup() {
    [[ -n $loadgen ]] && kill -9 "$loadgen" 2>/dev/null || true
    [[ -n $server ]] && kill -9 "$server" 2>/dev/null || true
    ip netns del "$NS" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

veth_pair_up "$NS" "$SRV" "$CLI"

dev=$work/dev

# sleeps PID [TID]: the voluntary context switches (each one sleep) of the process's
# threads, or of its thread TID only.
sleeps() {
    cat /proc/"$1"/task/${2:-*}/status | awk '/^voluntary_ctxt_switches/ { n += $2 } END { print n }'
}

# joined ADDR: the sessions that have joined a meeting so far.
joined() {
    { curl -sf "http://$1:18533/metrics" 2>/dev/null || true; } |
        awk '/^mc_session_joins_total/ && /status="success"/ { n += $2 } END { print n + 0 }'
}

# line MODE KIND RATE RUN JSON CPU0-BEFORE CPU0-AFTER SECONDS: one line of runs.txt.
line() {
    python3 - "$@" "$(getconf CLK_TCK)" <<'EOF'
import json, sys
mode, kind, rate, run, path, c1, c2, secs, hz = sys.argv[1:10]
j = json.load(open(path))
if "window" in j:
    w = j["window"]
    assert j["passed"], "the load generator reported failures"
    per_s, proc = w["ops_per_s"], w["server"][0]["us_per_op"]
    extra = (f" fanout-p99-ms={j['figures']['latencies']['fanout']['p99_ms']:.2f}"
             f" server-p99-ms={1e3 * w['server_histograms']['mc_fanout_duration_seconds']['p99_s']:.2f}")
    # mc-service's own counters over the window, per delivery.
    counters = w["server_counters"]
    def pick(name, label):
        return sum(v for k, v in counters.items() if k.startswith(name + "{") and label in k)
    ops = w["ops"]
    din = pick("mc_udp_datagrams_total", 'direction="in"') / ops
    reads = pick("mc_udp_syscalls_total", 'op="recvmmsg"') / ops
    pausing = pick("mc_rx_batch_epochs_total", 'way="pausing"')
    epochs = pick("mc_rx_batch_epochs_total", "")
    extra += (f" datagrams-in={din:.3f} recvmmsg={reads:.4f}"
              f" pausing-epochs={pausing:.0f}/{epochs:.0f}")
else:
    per_s, proc, extra = j["deliveries"] / j["window_s"], j["us_per_delivery"], ""
c1, c2 = ([float(x) for x in s.split()] for s in (c1, c2))
ops = per_s * float(secs)
extra += f" sleeps={(c2[5] - c1[5]) / ops:.4f}"
us = lambda ticks: ticks / float(hz) / ops * 1e6
print(f"{mode:8} {kind:5} rate={rate} run={run} deliveries/s={per_s:.0f} process-us={proc:.3f} "
      f"cpu0-us={us(c2[0] - c1[0]):.3f} cpu0-softirq-us={us(c2[1] - c1[1]):.3f} "
      f"cpu0-steal-ticks={c2[2] - c1[2]:.0f} cpu0-ipis={(c2[3] - c1[3]) / ops:.3f} "
      f"cpu1-ipis={(c2[4] - c1[4]) / ops:.3f}{extra}")
EOF
}

# run_mc MODE RATE RUN
run_mc() {
    local mode=$1 rate=$2 run=$3 addr=127.0.0.1 inns=()
    if [[ $mode == veth ]]; then
        addr=$SRV
        inns=(ip netns exec "$NS")
    fi
    for _ in $(seq 100); do
        [[ -z $("${inns[@]}" ss -Hlnut '( sport = :14533 or sport = :18533 )') ]] && break
        sleep 0.1
    done
    mc_bench_args "$MC" "$dev" "$addr:14533" "$addr:18533" "$SIZE"
    "${inns[@]}" taskset -c 0 "$MC" "${MC_ARGS[@]}" >"$work/server.log" 2>&1 &
    server=$!
    for _ in $(seq 100); do curl -sf "http://$addr:18533/ready" >/dev/null && break; sleep 0.1; done
    # `ip netns exec` and taskset both exec: $! is the server itself.
    grep -q mc-service "/proc/$server/comm" ||
        { echo "run.sh: pid $server is $(cat "/proc/$server/comm"), not mc-service" >&2; exit 1; }
    taskset -c 1 "$LG" --progress 0 --json "$work/report.json" --warmup "$WARMUP" --duration 10 \
        --server-pid "$server" --server-metrics "http://$addr:18533/metrics" --threads 1 \
        meeting --target "https://$addr:14533/" --dev-dir "$dev" --sizes "1x$SIZE" \
        --mix mute=100 --rate "$rate" --join-timeout 120 --drain 30 >"$work/loadgen.txt" 2>&1 &
    loadgen=$!
    # The traffic starts once every participant has joined; the measured window opens
    # WARMUP seconds later. Sample CPU 0 over 8 s inside it.
    local n=0
    for _ in $(seq 1200); do
        n=$(joined "$addr")
        ((n >= SIZE)) && break
        sleep 0.1
    done
    ((n >= SIZE)) || { echo "run.sh: only $n of $SIZE participants joined" >&2; exit 1; }
    sleep $((WARMUP + 1))
    local c1 c2
    c1="$(cpu0_sample) $(sleeps "$server")"
    sleep 8
    c2="$(cpu0_sample) $(sleeps "$server")"
    wait "$loadgen" || { echo "run.sh: mc-loadgen failed:" >&2; cat "$work/loadgen.txt" >&2; exit 1; }
    loadgen=
    kill -9 "$server"
    wait "$server" 2>/dev/null || true
    server=
    line "$mode" mc "$rate" "$run" "$work/report.json" "$c1" "$c2" 8
}

# run_plain MODE RATE RUN: udp-floor's fan-out datagrams, its server thread on CPU 0.
run_plain() {
    local mode=$1 rate=$2 run=$3 inns=()
    if [[ $mode == veth ]]; then
        inns=(--server-netns "$NS" --server-ip "$SRV" --client-ip "$CLI")
    fi
    "$FLOOR" --clients "$SIZE" --rate "$rate" --warmup 2 --duration 10 --server-cpu 0 \
        --client-cpu 1 "${inns[@]}" --json "$work/floor.json" >"$work/floor.txt" 2>&1 &
    server=$!
    sleep 3
    local c1 c2
    c1="$(cpu0_sample) $(sleeps "$server" "$server")"
    sleep 8
    c2="$(cpu0_sample) $(sleeps "$server" "$server")"
    wait "$server" || { echo "run.sh: udp-floor failed:" >&2; cat "$work/floor.txt" >&2; exit 1; }
    server=
    line "$mode" plain "$rate" "$run" "$work/floor.json" "$c1" "$c2" 8
}

: >"$OUT/runs.txt"
for run in $(seq "$RUNS"); do
    for mode in $MODES; do
        for rate in $RATES; do
            run_mc "$mode" "$rate" "$run" >>"$OUT/runs.txt"
            tail -n 1 "$OUT/runs.txt"
            run_plain "$mode" "$rate" "$run" >>"$OUT/runs.txt"
            tail -n 1 "$OUT/runs.txt"
        done
    done
done

python3 "$here/summary.py" "$OUT/runs.txt" >"$OUT/summary.txt"
cat "$OUT/summary.txt"
