#!/usr/bin/env bash
# Echo 10 × 1's traffic in plain UDP (bench/src/bin/udp-floor.rs --echo): the server
# thread's CPU per round trip while ten clients, each with one datagram in flight,
# spend --client-work-us before each next request. Rerun from the repository root
# after `cargo build --release -p mc-bench --bin udp-floor`:
#   bench/results/<this directory>/run.sh [out-dir]
set -euo pipefail
OUT=${1:-$(dirname "$0")}
FLOOR=target/release/udp-floor
echo "| client work per round trip, µs | round trips/s | server µs per round trip | datagrams per recvmmsg |" >"$OUT/summary.md"
echo "|---|---|---|---|" >>"$OUT/summary.md"
for work in 0 3 4 5 7 9 12; do
  cmd=("$FLOOR" --echo --clients 10 --client-work-us "$work" --warmup 2 --duration 10
    --server-cpu 0 --client-cpu 1 --json "$OUT/echo-work$work.json")
  echo "${cmd[*]}" >>"$OUT/commands.txt"
  "${cmd[@]}" >"$OUT/echo-work$work.txt"
  python3 - "$OUT/echo-work$work.json" "$work" >>"$OUT/summary.md" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print(f"| {sys.argv[2]} | {r['deliveries'] / r['window_s']:,.0f} | {r['us_per_delivery']:.2f} | {r['datagrams_per_recvmmsg']:.2f} |")
PY
done
cat "$OUT/summary.md"
