#!/usr/bin/env bash
# Forged short-header datagrams naming each of two shards, sent from 64 source ports
# (so both shards' sockets get them) as fast as one Python process can, while a meeting
# of 20 fans out mutes at 10/s across both shards. Reports the server's RSS (idle, and
# the peak sampled every 100 ms), the forwarding counters, the datagrams dropped as
# oversized (mc_udp_oversized_datagrams_total, 0 before 7404dba), the mesh's drops and
# the meeting's fan-out as the load generator saw it. The RSS peak is sampled
# from the flood's start to the end of the meeting's run, 2 s after the flood.
#
#   MC_BIN=<mc-service binary> LABEL=<name> SIZE=<datagram bytes> SECS=<flood seconds> \
#     [OUT=<directory for the results, this script's by default>] run.sh
#
# Run from the repository root after `cargo build --release -p mc-service -p mc-bench`.
set -euo pipefail
out=${OUT:-$(dirname "$0")}
bin=${MC_BIN:-target/release/mc-service}
label=${LABEL:-$(basename "$bin")}
size=${SIZE:-60000}
secs=${SECS:-6}
# shellcheck source=../../scripts/lib.sh
source bench/scripts/lib.sh
start_dev_mc "$bin" "" --enable-echo --shards 2
metrics() {
    curl -s 127.0.0.1:18080/metrics |
        awk -v n="$1" '$1 ~ "^"n"([{]|$)" {s += $2} END {printf "%d", s}'
}
rss() { awk '/VmRSS/ {print $2}' "/proc/$MC_PID/status"; }
idle=$(rss)
f0=$(metrics mc_datagrams_forwarded_total)
d0=$(metrics mc_datagrams_forward_dropped_total)
o0=$(metrics mc_udp_oversized_datagrams_total)
m0=$(metrics mc_messages_dropped_total)
target/release/mc-loadgen meeting --target https://127.0.0.1:14433/ --dev-dir "$DEV" \
    --threads 1 --sizes 1x20 --rate 10 --mix mute=100 --sessions-per-endpoint 1 \
    --duration $((secs + 2)) --progress 0 --json "$out/$label-loadgen.json" \
    > "$out/$label-loadgen.txt" 2>&1 &
lg=$!
sleep 2
peak=$idle
(while kill -0 "$MC_PID" 2>/dev/null; do rss; sleep 0.1; done) > "$out/$label-rss.txt" &
sampler=$!
sent=$(python3 - "$size" "$secs" <<'PY'
import socket, sys, time
size, secs = int(sys.argv[1]), float(sys.argv[2])
socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(64)]
for s in socks:
    s.setblocking(False)
packets = [bytes([0x40, shard]) + bytes(size - 2) for shard in (0, 1)]
sent, end = 0, time.monotonic() + secs
while time.monotonic() < end:
    for s in socks:
        for p in packets:
            try:
                s.sendto(p, ("127.0.0.1", 14433))
                sent += 1
            except BlockingIOError:
                pass
print(sent)
PY
)
wait $lg || true
kill $sampler 2>/dev/null || true
peak=$(sort -n "$out/$label-rss.txt" | tail -1)
f1=$(metrics mc_datagrams_forwarded_total)
d1=$(metrics mc_datagrams_forward_dropped_total)
o1=$(metrics mc_udp_oversized_datagrams_total)
m1=$(metrics mc_messages_dropped_total)
fanout=$(awk '$1 == "fanout" {print "fan-out p50 "$3" ms, p99 "$6" ms, max "$8" ms"}' "$out/$label-loadgen.txt")
delivered=$(awk '$1 == "notifications_delivered" || $1 == "notifications_expected" {printf "%s %s ", $1, $2}' "$out/$label-loadgen.txt")
errors=$(awk '/^errors/ {on = 1; next} on && /^[a-z]/ {on = 0} on {printf "%s; ", $0}' "$out/$label-loadgen.txt")
result=$(grep -E "^result" "$out/$label-loadgen.txt" || true)
{
    echo "$label: ${size}-byte forged datagrams for ${secs} s: $sent sent"
    echo "  RSS idle $idle KiB, peak during the flood $peak KiB (+$((peak - idle)) KiB)"
    echo "  forwarded $((f1 - f0)), dropped as forwarded $((d1 - d0)), dropped as oversized $((o1 - o0)), mesh messages dropped $((m1 - m0))"
    echo "  meeting of 20: $fanout; $delivered; errors: $errors $result"
} | tee -a "$out/summary.txt"
