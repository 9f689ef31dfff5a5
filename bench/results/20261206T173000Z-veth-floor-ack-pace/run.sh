#!/usr/bin/env bash
# Over the veth pair with RPS, does the pace at which the clients send their
# acknowledgements set how many interrupts, and how much softirq time, the server's CPU
# pays per delivery?
#
# bench/results/20261206T164000Z-fanout-veth found mc-service's fan-out receiving 0.58
# interrupts per delivery on CPU 0 over the pair, against 0.30 for the plain-UDP floor.
# A QUIC client spends microseconds building and sealing each ACK packet; udp-floor's
# plain clients send their 40-byte answers back to back. This script runs the plain
# fan-out (`udp-floor --clients 1000 --rate 10`, its server socket in the namespace)
# with the clients spending WORK µs of busy work before each answer
# (`--client-work-us`), for each WORK in WORKS (default "0 2 5 10"), RUNS times
# (default 3) in rotating order. Each line of runs.txt: udp-floor's server-thread CPU
# per delivery (process), all of CPU 0's busy and softirq time per delivery over 8 s of
# its window, and the interrupts (function-call and rescheduling) CPU 0 and CPU 1
# received per delivery.
#
# OUT (default: this directory). Needs root, iproute2 and target/release/udp-floor.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here/../../.."
RUNS=${RUNS:-3}
read -r -a WORKS <<<"${WORKS:-0 2 5 10}"
OUT=${OUT:-$here}
NS=mcbench-veth
SRV=198.18.0.1
CLI=198.18.0.2
FLOOR=target/release/udp-floor
[[ -x $FLOOR ]] || { echo "run.sh: $FLOOR is missing" >&2; exit 2; }
# shellcheck source=../../scripts/lib.sh
source bench/scripts/lib.sh

work=$(mktemp -d)
server=
cleanup() {
    [[ -n $server ]] && kill -9 "$server" 2>/dev/null || true
    ip netns del "$NS" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

veth_pair_up "$NS" "$SRV" "$CLI"


: >"$OUT/runs.txt"
for run in $(seq "$RUNS"); do
    r=$(((run - 1) % ${#WORKS[@]}))
    for w in "${WORKS[@]:r}" "${WORKS[@]:0:r}"; do
        "$FLOOR" --clients 1000 --rate 10 --warmup 2 --duration 10 --server-cpu 0 \
            --client-cpu 1 --client-work-us "$w" --server-netns "$NS" --server-ip "$SRV" \
            --client-ip "$CLI" --json "$work/floor.json" >"$work/floor.txt" 2>&1 &
        server=$!
        sleep 3
        c1=$(cpu0_sample)
        sleep 8
        c2=$(cpu0_sample)
        wait "$server" || { echo "run.sh: udp-floor failed:" >&2; cat "$work/floor.txt" >&2; exit 1; }
        server=
        python3 - "$work/floor.json" "$w" "$run" "$c1" "$c2" "$(getconf CLK_TCK)" <<'PY' | tee -a "$OUT/runs.txt"
import json, sys
j = json.load(open(sys.argv[1]))
w, run = sys.argv[2:4]
c1, c2 = ([float(x) for x in s.split()] for s in sys.argv[4:6])
hz = float(sys.argv[6])
per_s = j["deliveries"] / j["window_s"]
ops = per_s * 8
us = lambda ticks: ticks / hz / ops * 1e6
print(f"veth plain client-work-us={w} run={run} deliveries/s={per_s:.0f} "
      f"answers-per-delivery={j['answers'] / j['deliveries']:.3f} process-us={j['us_per_delivery']:.3f} "
      f"cpu0-us={us(c2[0] - c1[0]):.3f} cpu0-softirq-us={us(c2[1] - c1[1]):.3f} "
      f"cpu0-steal-ticks={c2[2] - c1[2]:.0f} cpu0-ipis={(c2[3] - c1[3]) / ops:.3f} "
      f"cpu1-ipis={(c2[4] - c1[4]) / ops:.3f}")
PY
    done
done

python3 - "$OUT/runs.txt" <<'PY' | tee "$OUT/summary.txt"
import re, statistics, sys
rows = {}
for line in open(sys.argv[1]):
    kv = dict(re.findall(r"(\S+)=\s*(\S+)", line))
    rows.setdefault(int(kv["client-work-us"]), []).append(kv)
med = lambda runs, f: statistics.median(float(r[f]) for r in runs)
print("plain fan-out over the veth pair, medians; µs per delivery and interrupts per delivery")
print(f"{'client work µs':>14} | {'process':>7} {'cpu0':>6} {'softirq':>7} | {'cpu0 IPIs':>9} {'cpu1 IPIs':>9} | {'answers':>7} | runs")
for w in sorted(rows):
    r = rows[w]
    print(f"{w:>14} | {med(r, 'process-us'):7.2f} {med(r, 'cpu0-us'):6.2f} {med(r, 'cpu0-softirq-us'):7.2f} | "
          f"{med(r, 'cpu0-ipis'):9.3f} {med(r, 'cpu1-ipis'):9.3f} | {med(r, 'answers-per-delivery'):7.3f} | {len(r)}")
PY
