#!/usr/bin/env bash
# One client asking for /metrics in a loop on one keep-alive connection for SECS
# seconds: the requests answered, and the server's CPU per request (the control plane's
# encoding of every series, or the last body past its budget of fresh ones). Server
# pinned to CPU 0, the client to CPU 1.
#
#   MC_BIN=<mc-service binary> LABEL=<name> SHARDS=<n> SECS=<seconds> run.sh
set -euo pipefail
out=$(dirname "$0")
bin=${MC_BIN:-target/release/mc-service}
label=${LABEL:-$(basename "$bin")}
shards=${SHARDS:-1}
secs=${SECS:-5}
cpus=0
[ "$shards" -gt 1 ] && cpus=0-$((shards - 1))
# shellcheck source=../../scripts/lib.sh
source bench/scripts/lib.sh
start_dev_mc "$bin" "$cpus" --shards "$shards"
body=$(curl -s 127.0.0.1:18080/metrics | wc -c)
t0=$(cpu_ticks "$MC_PID")
n=$(taskset -c 1 python3 - "$secs" <<'PY'
import http.client, sys, time
secs = float(sys.argv[1])
c = http.client.HTTPConnection("127.0.0.1", 18080)
end, n = time.monotonic() + secs, 0
while time.monotonic() < end:
    c.request("GET", "/metrics")
    r = c.getresponse()
    r.read()
    n += 1
print(n)
PY
)
t1=$(cpu_ticks "$MC_PID")
hz=$(getconf CLK_TCK)
python3 - "$label" "$shards" "$secs" "$body" "$n" "$((t1 - t0))" "$hz" <<'PY' | tee -a "$out/summary.txt"
import sys
label, shards, secs, body, n, ticks, hz = sys.argv[1:]
cpu = int(ticks) / int(hz)
print(f"{label}: {shards} shard(s), body {body} bytes: {n} requests in {secs} s, "
      f"server CPU {cpu:.2f} s, {cpu / int(n) * 1e6:.1f} us per request")
PY
