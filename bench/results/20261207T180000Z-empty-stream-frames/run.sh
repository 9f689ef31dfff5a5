#!/usr/bin/env bash
# QUIC packets full of empty STREAM frames on an open stream (`quic-empty-frames`,
# CONNS connections one after another, SECS seconds each, as fast as the socket takes
# them): the server's CPU time per packet (clock ticks over the run) and its RSS before
# and after. One shard pinned to CPU 0, the client to CPU 1; the CONNECT deadline is
# lifted so the connections stay open without a session.
#
#   MC_BIN=<mc-service binary> LABEL=<name> CONNS=<n> SECS=<s> [MODE=bytes RATE=<pps>] run.sh
#
# MODE=bytes sends one new byte per frame on the control stream instead (146 frames a
# packet), at RATE packets a second (the stream's flow control needs the server to keep
# up).
#
# Run from the repository root after `cargo build --release -p mc-service -p mc-bench`.
set -euo pipefail
out=$(dirname "$0")
bin=${MC_BIN:-target/release/mc-service}
label=${LABEL:-$(basename "$bin")}
conns=${CONNS:-2}
secs=${SECS:-3}
mode=${MODE:-empty}
rate=${RATE:-0}
# shellcheck source=../../scripts/lib.sh
source bench/scripts/lib.sh
start_dev_mc "$bin" 0 --shards 1 --connect-timeout-ms 60000
rss() { awk '/VmRSS/ {print $2}' "/proc/$MC_PID/status"; }
sleep 1
# Datagrams the server read (those the socket dropped cost it nothing).
read_in() {
  curl -s 127.0.0.1:18080/metrics |
    awk '/^mc_udp_datagrams_total/ && /direction="in"/ {n += $NF} END {print n + 0}'
}
rss0=$(rss)
in0=$(read_in)
t0=$(cpu_ticks "$MC_PID")
line=$(taskset -c 1 target/release/quic-empty-frames --target 127.0.0.1:14433 \
  --dev-dir "$DEV" --conns "$conns" --secs "$secs" --mode "$mode" --rate "$rate")
t1=$(cpu_ticks "$MC_PID")
sleep 1
rss1=$(rss)
packets=$(( $(read_in) - in0 ))
hz=$(getconf CLK_TCK)
python3 - "$label" "$packets" "$t0" "$t1" "$hz" "$rss0" "$rss1" "$line" "$conns" "$secs" "$mode" "$rate" <<'PY' | tee -a "$out/summary.txt"
import sys
label, packets, t0, t1, hz, rss0, rss1, line, conns, secs, mode, rate = sys.argv[1:]
cpu = (int(t1) - int(t0)) / int(hz)
p = int(packets)
print(f"{label} (CONNS={conns} SECS={secs} MODE={mode} RATE={rate}): sent {line}; the server read {p} datagrams, {cpu:.2f} s of CPU, "
      f"{cpu / max(p, 1) * 1e6:.2f} µs per datagram read; "
      f"RSS {rss0} -> {rss1} KiB (+{int(rss1) - int(rss0)})")
PY
