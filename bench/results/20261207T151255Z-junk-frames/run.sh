#!/usr/bin/env bash
# Empty HTTP/3 frames of a reserved type (two bytes each) sent on request streams before
# their HEADERS by `h3-junk-frames`, with each connection's other request streams held
# half-started (--held): the server's CPU per million frames, one shard pinned to CPU 0
# and the client to CPU 1.
#
#   MC_BIN=<mc-service binary> LABEL=<name> HELD=<streams held> SECS=<seconds> run.sh
#
# Run from the repository root after `cargo build --release -p mc-service -p mc-bench`.
set -euo pipefail
out=$(dirname "$0")
bin=${MC_BIN:-target/release/mc-service}
label=${LABEL:-$(basename "$bin")}
held=${HELD:-14}
secs=${SECS:-8}
# shellcheck source=../../scripts/lib.sh
source bench/scripts/lib.sh
start_dev_mc "$bin" 0 --enable-echo --shards 1
hz=$(getconf CLK_TCK)
t0=$(cpu_ticks "$MC_PID")
line=$(taskset -c 1 target/release/h3-junk-frames --target https://127.0.0.1:14433/echo \
    --dev-dir "$DEV" --secs "$secs" --held "$held")
t1=$(cpu_ticks "$MC_PID")
bytes=$(echo "$line" | awk '{print $2}')
python3 - "$label" "$held" "$secs" "$bytes" "$((t1 - t0))" "$hz" <<'PY' | tee -a "$out/summary.txt"
import sys
label, held, secs, sent, ticks, hz = sys.argv[1:]
frames = int(sent) / 2
cpu = int(ticks) / int(hz)
print(f"{label}: held {held}, {secs} s: {frames / 1e6:.1f} M frames sent, server CPU {cpu:.2f} s, "
      f"{cpu / (frames / 1e6):.3f} s per million frames ({frames / 1e6 / float(secs):.2f} M frames/s)")
PY
