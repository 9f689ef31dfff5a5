#!/usr/bin/env bash
# Echo 10 × 1's traffic in plain UDP (bench/src/bin/udp-floor.rs --echo), the server
# answering with poll + recvmmsg + sendmmsg against the same server through one io_uring
# (--io-uring: a multishot recvmsg, each reply a sendmsg entry submitted with the next
# wait). Pairs alternate which goes first, at two paces of the ten clients together.
# Rerun from the repository root after `cargo build --release -p mc-bench --bin udp-floor`:
#   bench/results/<this directory>/run.sh [out-dir]
set -euo pipefail
OUT=${1:-$(dirname "$0")}
FLOOR=target/release/udp-floor
: >"$OUT/commands.txt"
one() { # name pace [--io-uring]
  local name=$1 pace=$2
  shift 2
  local cmd=("$FLOOR" --echo --clients 10 --requests-per-s "$pace" --warmup 2 --duration 8
    --server-cpu 0 --client-cpu 1 "$@" --json "$OUT/$name.json")
  echo "${cmd[*]}" >>"$OUT/commands.txt"
  "${cmd[@]}" >"$OUT/$name.txt"
}
for pace in 170000 100000; do
  for pair in 1 2 3 4 5 6; do
    if (( pair % 2 )); then
      one "plain-$pace-$pair" "$pace"; one "uring-$pace-$pair" "$pace" --io-uring
    else
      one "uring-$pace-$pair" "$pace" --io-uring; one "plain-$pace-$pair" "$pace"
    fi
  done
done
python3 - "$OUT" >"$OUT/summary.md" <<'PY'
import json, os, statistics, sys
out = sys.argv[1]
def load(n):
    return json.load(open(os.path.join(out, n + ".json")))
print("| pace (requests/s) | pair | first | plain: round trips/s, µs per round trip, datagrams per recvmmsg | io_uring: round trips/s, µs per round trip, datagrams per io_uring_enter | io_uring ÷ plain |")
print("|---|---|---|---|---|---|")
for pace in (170000, 100000):
    ratios = []
    for pair in range(1, 7):
        p, u = load(f"plain-{pace}-{pair}"), load(f"uring-{pace}-{pair}")
        r = u["us_per_delivery"] / p["us_per_delivery"]
        ratios.append(r)
        first = "plain" if pair % 2 else "io_uring"
        print(f"| {pace:,} | {pair} | {first} | {p['deliveries'] / p['window_s']:,.0f}, {p['us_per_delivery']:.2f}, {p['datagrams_per_recvmmsg']:.2f} | "
              f"{u['deliveries'] / u['window_s']:,.0f}, {u['us_per_delivery']:.2f}, {u['datagrams_per_ring_enter']:.2f} | {r:.3f} |")
    lower = sum(r < 1 for r in ratios)
    print(f"| {pace:,} | median | | | | **{statistics.median(ratios):.3f}** ({lower} of {len(ratios)} pairs lower) |")
PY
cat "$OUT/summary.md"
