#!/usr/bin/env python3
"""summary.md from echo10x1.txt and fanout10.txt (lines of bench/paired.sh)."""
import os
import statistics

here = os.path.dirname(os.path.abspath(__file__))
out = ["# Server CPU from /proc and from /metrics, before and after", "",
       "From `run.sh` here. Per run: the server's CPU per operation over mc-loadgen's "
       "measured window from `/proc/PID/stat` (10 ms ticks) and from its own "
       "`process_cpu_seconds_total` (`/metrics`), both read at the window's start and end. "
       "`before` is 48b7d604 (the prometheus crate's process collector, whole seconds), "
       "`after` mc-service's own collector (getrusage, microseconds).", "",
       "| load | build | runs | µs per op, /proc (median) | µs per op, /metrics (median) | /metrics ÷ /proc, each run | largest difference |",
       "|---|---|---|---|---|---|---|"]
for name, load in (("echo10x1.txt", "echo 10 × 1, µs per round trip (6 s windows)"),
                   ("fanout10.txt", "fan-out 1,000 × 10 mutes/s, µs per delivery (10 s windows)")):
    rows = [l.split() for l in open(os.path.join(here, name)) if l.strip()]
    for build, label in (("target/ab/mc-service-48b7d604", "before"),
                         ("target/release/mc-service", "after")):
        r = [(float(x[2]), float(x[6])) for x in rows if x[1] == build]
        ratios = [m / p for p, m in r]
        worst = max(abs(q - 1) for q in ratios)
        out.append("| %s | %s | %d | %.3f | %.3f | %s | %.1f %% |" % (
            load, label, len(r), statistics.median(p for p, _ in r),
            statistics.median(m for _, m in r), ", ".join("%.3f" % q for q in ratios),
            100 * worst))
out += ["", "The host was slow in this sitting for both builds alike: echo 10 × 1 near 7 µs "
        "per round trip and the fan-out near 10 µs per delivery, against 4.45 and 4.4 in "
        "`bench/results/20261206T024239Z-7f3966b7-compare/` three hours before (the same "
        "server code). The runs show how the two readings agree, not what the server costs."]
open(os.path.join(here, "summary.md"), "w").write("\n".join(out) + "\n")
