#!/usr/bin/env bash
# Does mc-service's CPU per echo round trip, against the tokio/quinn peer's
# (wt-echo-server), hold when each side pays for its own receive path, as it does on a
# network?
#
# On loopback the sending CPU runs the receiver's whole receive path: the server's CPU
# pays for delivering its replies into the clients' sockets and waking the clients, and
# the client's CPU pays for delivering the requests into the server's socket. A network
# splits it the other way: the server's machine receives the requests, the clients'
# machines receive the replies. This script compares both servers two ways:
#
#   loopback  the servers on 127.0.0.1, as bench/compare.sh runs them;
#   veth      the servers in a network namespace of their own, reached over a veth pair
#             whose two ends steer their receive processing (RPS) to the CPU of the
#             side that receives: the server end to CPU 0, the client end to CPU 1.
#             The pair's addresses are 198.18.0.1 (server) and 198.18.0.2 (client), from
#             the range set aside for benchmarks (RFC 2544); no packet leaves this host.
#
# Each run: a fresh server pinned to CPU 0, mc-loadgen pinned to CPU 1 (2 s warm-up,
# 8 s measured), echo 100 × 8 and echo 10 × 1 of 64 bytes, with 8 sessions per client
# socket (mc-loadgen's default) and with 1 (as browsers connect). It prints one line per
# run with two figures of server CPU per round trip:
#
#   process  the server process's CPU (/proc/PID/stat, as mc-loadgen reports it);
#   cpu0     all of CPU 0's busy time (/proc/stat: user, nice, system, irq, softirq),
#            which also holds receive processing that runs in interrupt context while
#            the server sleeps and is not charged to any process.
#
# Both are read by this script over the same 6 s inside the measured phase, with CPU 0's
# stolen ticks (time the hypervisor ran something else), the server's sleeps (voluntary
# context switches) and CPU 0's wake-up and function-call IPIs per round trip. Needs root,
# iproute2 and target/release/{mc-service,wt-echo-server,mc-loadgen}. Writes runs.txt
# and, with summary.py, summary.txt (medians and mc-service ÷ peer) next to itself.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here/../../.."
RUNS=${RUNS:-3}
NS=mcbench-veth
SRV=198.18.0.1
CLI=198.18.0.2
MC=target/release/mc-service
PEER=target/release/wt-echo-server
LG=target/release/mc-loadgen
for b in "$MC" "$PEER" "$LG"; do
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

ip netns del "$NS" 2>/dev/null || true
ip netns add "$NS"
ip link add mcb-c type veth peer name mcb-s netns "$NS"
ip addr add "$CLI/30" dev mcb-c
ip link set mcb-c up
ip -n "$NS" addr add "$SRV/30" dev mcb-s
ip -n "$NS" link set mcb-s up
ip -n "$NS" link set lo up
# RPS masks: bit 0 is CPU 0 (the server's), bit 1 is CPU 1 (the client's).
echo 2 >/sys/class/net/mcb-c/queues/rx-0/rps_cpus
ip netns exec "$NS" sh -c 'echo 1 >/sys/class/net/mcb-s/queues/rx-0/rps_cpus'

# The dev certificate, signing key and cert hash: mc-service --dev writes them on its
# first start. Both servers serve the same certificate.
dev=$work/dev
mc_bench_args "$MC" "$dev" 127.0.0.1:14533 127.0.0.1:18533 2000
taskset -c 0 "$MC" "${MC_ARGS[@]}" >"$work/first.log" 2>&1 &
server=$!
for _ in $(seq 100); do curl -sf http://127.0.0.1:18533/ready >/dev/null && break; sleep 0.1; done
kill -9 "$server"
wait "$server" 2>/dev/null || true
server=
[[ -s $dev/cert.sha256 ]] || { echo "run.sh: no dev certificate" >&2; exit 1; }

# cpu0: CPU 0's busy, softirq and stolen ticks from /proc/stat.
cpu0() { awk '$1 == "cpu0" { print $2 + $3 + $4 + $7 + $8, $8, $9 }' /proc/stat; }
# proc_ticks PID: the process's user + system ticks.
proc_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
# wakeups PID: the process's voluntary context switches (all its threads: each is one
# sleep), then CPU 0's rescheduling and function-call interrupts (the IPIs that wake a
# sleeping CPU and hand it steered packets).
wakeups() {
    cat /proc/"$1"/task/*/status | awk '/^voluntary_ctxt_switches/ { n += $2 } END { printf "%d ", n }'
    awk '$1 == "RES:" || $1 == "CAL:" { n += $2 } END { print n }' /proc/interrupts
}

# run_one MODE SERVER SESSIONS WINDOW SPE RUN
run_one() {
    local mode=$1 kind=$2 sessions=$3 window=$4 spe=$5 run=$6 addr=127.0.0.1 inns=()
    if [[ $mode == veth ]]; then
        addr=$SRV
        inns=(ip netns exec "$NS")
    fi
    for _ in $(seq 100); do
        [[ -z $("${inns[@]}" ss -Hlnut '( sport = :14533 or sport = :18533 )') ]] && break
        sleep 0.1
    done
    local metrics=()
    if [[ $kind == mc ]]; then
        mc_bench_args "$MC" "$dev" "$addr:14533" "$addr:18533" 2000
        "${inns[@]}" taskset -c 0 "$MC" "${MC_ARGS[@]}" >"$work/server.log" 2>&1 &
        server=$!
        for _ in $(seq 100); do curl -sf "http://$addr:18533/ready" >/dev/null && break; sleep 0.1; done
        metrics=(--server-metrics "http://$addr:18533/metrics")
    else
        "${inns[@]}" taskset -c 0 "$PEER" --bind "$addr:14533" --cert "$dev/cert.pem" \
            --key "$dev/key.pem" >"$work/server.log" 2>&1 &
        server=$!
        for _ in $(seq 100); do grep -q "listening on" "$work/server.log" && break; sleep 0.1; done
    fi
    # `ip netns exec` and taskset both exec: $! is the server itself.
    grep -qE 'mc-service|wt-echo-server' "/proc/$server/comm" ||
        { echo "run.sh: pid $server is $(cat "/proc/$server/comm"), not the server" >&2; exit 1; }
    sleep 0.5
    taskset -c 1 "$LG" --progress 0 --json "$work/report.json" --warmup 2 --duration 8 \
        --server-pid "$server" "${metrics[@]}" echo --target "https://$addr:14533/echo" \
        --dev-dir "$dev" --sessions "$sessions" --window "$window" --size 64 \
        --sessions-per-endpoint "$spe" >"$work/loadgen.txt" 2>&1 &
    loadgen=$!
    sleep 3.5
    local c1 p1 w1 c2 p2 w2
    c1=$(cpu0)
    p1=$(proc_ticks "$server")
    w1=$(wakeups "$server")
    sleep 6
    c2=$(cpu0)
    p2=$(proc_ticks "$server")
    w2=$(wakeups "$server")
    wait "$loadgen" || { echo "run.sh: mc-loadgen failed:" >&2; cat "$work/loadgen.txt" >&2; exit 1; }
    loadgen=
    kill -9 "$server"
    wait "$server" 2>/dev/null || true
    server=
    python3 - "$work/report.json" "$mode" "$kind" "echo${sessions}x$window" "$spe" "$run" \
        "$c1" "$p1" "$c2" "$p2" "$(getconf CLK_TCK)" "$w1" "$w2" <<'EOF'
import json, sys
j = json.load(open(sys.argv[1]))
mode, kind, op, spe, run = sys.argv[2:7]
c1, p1, c2, p2 = ([float(x) for x in s.split()] for s in sys.argv[7:11])
hz = float(sys.argv[11])
w1, w2 = ([float(x) for x in s.split()] for s in sys.argv[12:14])
w = j["window"]
assert j["passed"], "the load generator reported failures"
rate = w["ops_per_s"]
ops = rate * 6.0
us = lambda ticks: ticks / hz / ops * 1e6
print(f"{mode:8} {kind:4} {op:9} spe={spe} run={run} rt/s={rate:.0f} "
      f"loadgen-process-us={w['server'][0]['us_per_op']:.3f} process-us={us(p2[0] - p1[0]):.3f} "
      f"cpu0-us={us(c2[0] - c1[0]):.3f} cpu0-softirq-us={us(c2[1] - c1[1]):.3f} "
      f"cpu0-steal-ticks={c2[2] - c1[2]:.0f} sleeps-per-rt={(w2[0] - w1[0]) / ops:.3f} "
      f"cpu0-ipis-per-rt={(w2[1] - w1[1]) / ops:.3f} generator-saturated={w['generator']['saturated']}")
EOF
}

: >"$here/runs.txt"
for run in $(seq "$RUNS"); do
    # Alternate which server goes first, so that a drift of the host falls on both.
    order=(mc peer)
    ((run % 2 == 0)) && order=(peer mc)
    for mode in loopback veth; do
        for spe in 8 1; do
            for op in "100 8" "10 1"; do
                for kind in "${order[@]}"; do
                    # shellcheck disable=SC2086
                    run_one "$mode" "$kind" $op "$spe" "$run" >>"$here/runs.txt"
                    tail -n 1 "$here/runs.txt"
                done
            done
        done
    done
done

python3 "$here/summary.py" "$here/runs.txt" >"$here/summary.txt"
cat "$here/summary.txt"
