#!/usr/bin/env bash
# Request heads sent a byte at a time to the admin port: CONNS connections, each sending
# an 8,000-byte head (one long header line) in single-byte TCP segments (TCP_NODELAY),
# all within the header timeout. Reports the bytes sent and the server's CPU per head
# byte. Server pinned to CPU 0, the client to CPU 1.
#
#   MC_BIN=<mc-service binary> LABEL=<name> CONNS=<connections> run.sh
set -euo pipefail
out=$(dirname "$0")
bin=${MC_BIN:-target/release/mc-service}
label=${LABEL:-$(basename "$bin")}
conns=${CONNS:-32}
# shellcheck source=../../scripts/lib.sh
source bench/scripts/lib.sh
start_dev_mc "$bin" 0 --shards 1
t0=$(cpu_ticks "$MC_PID")
result=$(taskset -c 1 python3 - "$conns" <<'PY'
import socket, sys, time
conns = int(sys.argv[1])
head = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 7940 + b"\r\n\r\n"
socks = []
for _ in range(conns):
    s = socket.create_connection(("127.0.0.1", 18080))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    socks.append(s)
start = time.monotonic()
sent = 0
for i in range(len(head)):
    for s in socks:
        s.send(head[i:i + 1])
        sent += 1
    # Keep the server reading each byte on its own: a short pause every few bytes.
    if i % 8 == 7:
        time.sleep(0.0002)
answered = 0
for s in socks:
    s.settimeout(5)
    if s.recv(64).startswith(b"HTTP/1.1 200"):
        answered += 1
print(sent, answered, f"{time.monotonic() - start:.2f}")
PY
)
t1=$(cpu_ticks "$MC_PID")
hz=$(getconf CLK_TCK)
python3 - "$label" "$conns" "$result" "$((t1 - t0))" "$hz" <<'PY' | tee -a "$out/summary.txt"
import sys
label, conns, result, ticks, hz = sys.argv[1:]
sent, answered, secs = result.split()
cpu = int(ticks) / int(hz)
print(f"{label}: {conns} connections, {sent} head bytes a byte at a time in {secs} s, "
      f"{answered} answered 200; server CPU {cpu:.2f} s, {cpu / int(sent) * 1e9:.0f} ns per byte")
PY
