#!/usr/bin/env bash
# One WebTransport client flooding datagrams at a shard: mc-loadgen asks for 1,000,000
# datagrams of 64 B a second on one session (plus one echo in flight on its stream);
# what reaches the server, and what the server's process spends on it (utime + stime
# from /proc over the whole run, connect included). Server on CPU 0, client on CPU 1.
# Run from the repository root after `cargo build --release -p mc-service -p mc-bench`.
set -euo pipefail
out=$(dirname "$0")
dev=$(mktemp -d)
taskset -c 0 target/release/mc-service --dev --enable-echo --shards 1 --dev-dir "$dev" \
    --webtransport-bind-address 127.0.0.1:14433 --http-bind-address 127.0.0.1:18080 \
    --log-filter warn &
pid=$!
trap 'kill $pid 2>/dev/null; rm -rf "$dev"' EXIT
for _ in $(seq 50); do curl -sf 127.0.0.1:18080/ready >/dev/null && break; sleep 0.2; done
hz=$(getconf CLK_TCK)
t0=$(awk '{print $14+$15}' /proc/$pid/stat)
w0=$(date +%s.%N)
taskset -c 1 target/release/mc-loadgen echo --target https://127.0.0.1:14433/echo \
    --dev-dir "$dev" --threads 1 --duration 10 --sessions 1 --window 1 \
    --datagrams 1000000 > "$out/loadgen.txt" 2>&1
t1=$(awk '{print $14+$15}' /proc/$pid/stat)
w1=$(date +%s.%N)
curl -s 127.0.0.1:18080/metrics | grep -E '^mc_udp_datagrams_total|^mc_h3_datagrams_dropped' > "$out/metrics.txt"
in=$(awk -F' ' '/direction="in"/ {print $2}' "$out/metrics.txt")
python3 - "$t0" "$t1" "$hz" "$w0" "$w1" "$in" <<'PY' | tee "$out/summary.txt"
import sys
t0, t1, hz, w0, w1, udp_in = (float(x) for x in sys.argv[1:])
cpu = (t1 - t0) / hz
wall = w1 - w0
print(f"server CPU {cpu:.2f} s over {wall:.1f} s of the run: {cpu / wall:.2f} cores; "
      f"{udp_in:.0f} UDP datagrams in ({udp_in / wall:.0f}/s), {cpu / udp_in * 1e6:.2f} us each")
PY
