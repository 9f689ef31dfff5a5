#!/usr/bin/env python3
"""How long a killed mc-service's ports stay taken after the process exits.

    python3 kill-rebind.py BINARY RUNS [webtransport|http]

Each run starts BINARY --dev with two shards on 127.0.0.1, waits for its ready line and
200 ms more (the shards parked on their sockets, the admin listener accepting), sends
SIGKILL, reaps it, and binds the port named (the WebTransport UDP port by default, or
the admin TCP port) at once, retrying every millisecond until the bind succeeds. Prints
how many first binds were refused and the longest wait.
"""
import os, signal, socket, subprocess, sys, tempfile, time

binary, runs = sys.argv[1], int(sys.argv[2])
which = sys.argv[3] if len(sys.argv) > 3 else "webtransport"
kind = socket.SOCK_DGRAM if which == "webtransport" else socket.SOCK_STREAM
refused, waits = 0, []
for i in range(runs):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        http = probe.getsockname()[1]
    dev = tempfile.mkdtemp(prefix="kill-rebind-")
    p = subprocess.Popen(
        [binary, "--dev", "--dev-dir", dev, "--shards", "2",
         "--webtransport-bind-address", f"127.0.0.1:{port}",
         "--http-bind-address", f"127.0.0.1:{http}"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for line in p.stdout:
        if "Meeting Controller ready" in line:
            break
    time.sleep(0.2)
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    start, first = time.monotonic(), True
    while True:
        with socket.socket(socket.AF_INET, kind) as s:
            try:
                s.bind(("127.0.0.1", port if which == "webtransport" else http))
                break
            except OSError:
                refused += first
                first = False
        time.sleep(0.001)
    waits.append(time.monotonic() - start)
print(f"{binary}, {which} port: {refused} of {runs} binds refused right after the exit; "
      f"longest wait {max(waits) * 1000:.1f} ms")
