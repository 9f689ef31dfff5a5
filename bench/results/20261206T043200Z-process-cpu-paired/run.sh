#!/usr/bin/env bash
# The server's CPU per operation as mc-loadgen reads it from /proc and from the server's
# own process_cpu_seconds_total (/metrics), before and after that counter was exported
# to the microsecond. `before` is 48b7d604 (the prometheus crate's process collector,
# whole seconds), `after` the build with mc-service's own collector; build the older one
# into target/ab/mc-service-48b7d604 first (git worktree + cargo build --release).
# Each line of echo10x1.txt / fanout10.txt is one run of bench/paired.sh:
#   run binary µs-per-op(/proc) of-it-user-space %steal round-trips/s|p99-ms µs-per-op(/metrics)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here/../../.."
before=target/ab/mc-service-48b7d604
after=target/release/mc-service
{
    bench/paired.sh echo 10 1 3 "$before" "$after"
    bench/paired.sh echo 10 1 3 "$after" "$before"
} | tee "$here/echo10x1.txt"
{
    bench/paired.sh fanout 10 2 "$before" "$after"
    bench/paired.sh fanout 10 2 "$after" "$before"
} | tee "$here/fanout10.txt"
