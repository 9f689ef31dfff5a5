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
# context switches) and CPU 0's wake-up and function-call IPIs per round trip.
#
# After each echo 10 × 1 pair, the same datagrams in plain UDP with no work above the
# kernel (`udp-floor --echo --clients 10`, its server socket in the namespace on veth),
# paced to the round trips per second the peer reached in that pair: the floor that
# echo 10 × 1's target is read against (bench/README.md, "Echo 10 × 1 beside the same
# datagrams in plain UDP"). Its process figure is its server thread's.
#
# For mc-service each line also gives the epochs of its receive-pause trial (tuning.md,
# MC_RX_BATCH_US) over the same 6 s: pausing/all.
#
# OPS (default "100x8 10x1") picks the echo settings, MODES (default "loopback veth") and
# SPES (default "8 1") the modes and sessions per socket, KINDS (default "mc peer") the
# servers: "mc-nopause" is mc-service with the trial's pause off (MC_RX_BATCH_US=0),
# "mc-base" the mc-service binary MC_BASE (another build, to compare two), and each run
# rotates their order; "peer" must be among them (the ratios and the plain floor's pace
# are the peer's). LOG_FILTER, when set, is mc-service's --log-filter, and each
# mc-service run's log is kept in OUT (server-MODE-KIND-spe-SPE-run-RUN.log). OUT
# (default: this directory) is where runs.txt and, with summary.py, summary.txt (medians
# and ratios to the peer) go. Needs root, iproute2 and
# target/release/{mc-service,wt-echo-server,mc-loadgen,udp-floor}.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here/../../.."
RUNS=${RUNS:-3}
OPS=${OPS:-"100x8 10x1"}
MODES=${MODES:-"loopback veth"}
SPES=${SPES:-"8 1"}
read -r -a KINDS <<<"${KINDS:-mc peer}"
OUT=${OUT:-$here}
[[ " ${KINDS[*]} " == *" peer "* ]] ||
    { echo "run.sh: KINDS must include peer" >&2; exit 2; }
NS=mcbench-veth
SRV=198.18.0.1
CLI=198.18.0.2
MC=target/release/mc-service
PEER=target/release/wt-echo-server
LG=target/release/mc-loadgen
FLOOR=target/release/udp-floor
for b in "$MC" "$PEER" "$LG" "$FLOOR"; do
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
# proc_ticks PID [TID]: the process's user + system ticks, or only its thread TID's.
proc_ticks() { awk '{ print $14 + $15 }' "/proc/$1${2:+/task/$2}/stat"; }
# wakeups PID [TID]: the voluntary context switches of the process's threads (each is
# one sleep), or of its thread TID only, then CPU 0's rescheduling and function-call
# interrupts (the IPIs that wake a sleeping CPU and hand it steered packets).
wakeups() {
    cat /proc/"$1"/task/${2:-*}/status | awk '/^voluntary_ctxt_switches/ { n += $2 } END { printf "%d ", n }'
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
    if [[ $kind == mc* ]]; then
        local settings=() bin=$MC
        [[ $kind == mc-nopause ]] && settings=(MC_RX_BATCH_US=0)
        [[ $kind == mc-base ]] && bin=${MC_BASE:?KINDS has mc-base: set MC_BASE to a binary}
        mc_bench_args "$bin" "$dev" "$addr:14533" "$addr:18533" 2000
        [[ -n ${LOG_FILTER:-} ]] && MC_ARGS=("${MC_ARGS[@]/#warn/$LOG_FILTER}")
        "${inns[@]}" taskset -c 0 env "${settings[@]}" "$bin" "${MC_ARGS[@]}" >"$work/server.log" 2>&1 &
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
    local c1 p1 w1 e1 c2 p2 w2 e2
    c1=$(cpu0)
    p1=$(proc_ticks "$server")
    w1=$(wakeups "$server")
    e1=$(epochs "$addr")
    sleep 6
    c2=$(cpu0)
    p2=$(proc_ticks "$server")
    w2=$(wakeups "$server")
    e2=$(epochs "$addr")
    wait "$loadgen" || { echo "run.sh: mc-loadgen failed:" >&2; cat "$work/loadgen.txt" >&2; exit 1; }
    loadgen=
    kill -9 "$server"
    wait "$server" 2>/dev/null || true
    server=
    if [[ -n ${LOG_FILTER:-} && $kind == mc* ]]; then
        cp "$work/server.log" "$OUT/server-$mode-$kind-spe-$spe-run-$run.log"
    fi
    report "$work/report.json" "$mode" "$kind" "echo${sessions}x$window" "$spe" "$run" \
        "$c1" "$p1" "$c2" "$p2" "$w1" "$w2" |
        if [[ $kind == mc* ]]; then
            read -r pa1 all1 <<<"$e1"
            read -r pa2 all2 <<<"$e2"
            sed "s|\$| pausing-epochs=$((pa2 - pa1))/$((all2 - all1))|"
        else
            cat
        fi
}

# epochs ADDR: mc-service's receive-pause trial epochs so far, pausing then all (0 0 for
# a server without the counter).
epochs() {
    { curl -sf "http://$1:18533/metrics" 2>/dev/null || true; } |
        awk '/^mc_rx_batch_epochs_total/ { all += $2; if (/way="pausing"/) p += $2 }
             END { print p + 0, all + 0 }'
}

# report JSON MODE KIND OP SPE RUN CPU0-BEFORE PROC-BEFORE CPU0-AFTER PROC-AFTER
#        WAKEUPS-BEFORE WAKEUPS-AFTER: prints a run's line from its report and samples.
report() {
    python3 - "$1" "$2" "$3" "$4" "$5" "$6" "$7" "$8" "$9" "${10}" "$(getconf CLK_TCK)" \
        "${11}" "${12}" <<'EOF'
import json, sys
j = json.load(open(sys.argv[1]))
if "window" not in j:
    # udp-floor's report: its server thread's CPU over its own measured window.
    j = {"passed": True, "window": {"ops_per_s": j["deliveries"] / j["window_s"],
                                    "server": [{"us_per_op": j["us_per_delivery"]}],
                                    "generator": {"saturated": "n/a"}}}
mode, kind, op, spe, run = sys.argv[2:7]
c1, p1, c2, p2 = ([float(x) for x in s.split()] for s in sys.argv[7:11])
hz = float(sys.argv[11])
w1, w2 = ([float(x) for x in s.split()] for s in sys.argv[12:14])
w = j["window"]
assert j["passed"], "the load generator reported failures"
rate = w["ops_per_s"]
ops = rate * 6.0
us = lambda ticks: ticks / hz / ops * 1e6
print(f"{mode:8} {kind:5} {op:9} spe={spe} run={run} rt/s={rate:.0f} "
      f"loadgen-process-us={w['server'][0]['us_per_op']:.3f} process-us={us(p2[0] - p1[0]):.3f} "
      f"cpu0-us={us(c2[0] - c1[0]):.3f} cpu0-softirq-us={us(c2[1] - c1[1]):.3f} "
      f"cpu0-steal-ticks={c2[2] - c1[2]:.0f} sleeps-per-rt={(w2[0] - w1[0]) / ops:.3f} "
      f"cpu0-ipis-per-rt={(w2[1] - w1[1]) / ops:.3f} generator-saturated={w['generator']['saturated']}")
EOF
}

# run_plain MODE SPE RUN RATE: udp-floor's echo 10 × 1 in plain UDP, paced to RATE round
# trips per second; its server is its main thread, on CPU 0.
run_plain() {
    local mode=$1 spe=$2 run=$3 rate=$4 inns=()
    if [[ $mode == veth ]]; then
        inns=(--server-netns "$NS" --server-ip "$SRV" --client-ip "$CLI")
    fi
    "$FLOOR" --echo --clients 10 --payload-bytes 64 --requests-per-s "$rate" --warmup 2 \
        --duration 8 --server-cpu 0 --client-cpu 1 "${inns[@]}" --json "$work/floor.json" \
        >"$work/floor.txt" 2>&1 &
    server=$!
    sleep 3.5
    local c1 p1 w1 c2 p2 w2
    c1=$(cpu0)
    p1=$(proc_ticks "$server" "$server")
    w1=$(wakeups "$server" "$server")
    sleep 6
    c2=$(cpu0)
    p2=$(proc_ticks "$server" "$server")
    w2=$(wakeups "$server" "$server")
    wait "$server" || { echo "run.sh: udp-floor failed:" >&2; cat "$work/floor.txt" >&2; exit 1; }
    server=
    report "$work/floor.json" "$mode" plain echo10x1 "$spe" "$run" "$c1" "$p1" "$c2" "$p2" \
        "$w1" "$w2"
}

: >"$OUT/runs.txt"
for run in $(seq "$RUNS"); do
    # Rotate the servers' order from run to run, so that a drift of the host falls on all.
    r=$(((run - 1) % ${#KINDS[@]}))
    order=("${KINDS[@]:r}" "${KINDS[@]:0:r}")
    for mode in $MODES; do
        for spe in $SPES; do
            for op in $OPS; do
                for kind in "${order[@]}"; do
                    run_one "$mode" "$kind" "${op%x*}" "${op#*x}" "$spe" "$run" >>"$OUT/runs.txt"
                    tail -n 1 "$OUT/runs.txt"
                done
                if [[ $op == 10x1 ]]; then
                    # The peer's round trips per second in the pair just run.
                    rate=$(awk '$2 == "peer" && $3 == "echo10x1" { r = $6 } END { sub("rt/s=", "", r); print r }' "$OUT/runs.txt")
                    run_plain "$mode" "$spe" "$run" "$rate" >>"$OUT/runs.txt"
                    tail -n 1 "$OUT/runs.txt"
                fi
            done
        done
    done
done

python3 "$here/summary.py" "$OUT/runs.txt" >"$OUT/summary.txt"
cat "$OUT/summary.txt"
