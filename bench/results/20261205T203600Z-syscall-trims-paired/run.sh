#!/usr/bin/env bash
# Four small cuts to the shard's per-pass user-space work, against the build before them
# (commit fd5b575), in paired runs of echo 10 x 1 (bench/paired.sh): trims.diff
#   - the receive headers pointed at their buffers once, only the lengths the last
#     recvmmsg wrote back reset before the next (was: all 16 headers rewritten per call);
#   - recvmmsg/sendmmsg as plain system calls, not libc's cancellation-point wrappers;
#   - H3Event::Request's head boxed (the event queue moved 176-byte events);
#   - the mesh asked whether any lane holds a message instead of summing their lengths.
# The wrappers were 1.1 % of the samples in
# bench/results/20261205T204746Z-f282d151-compare/perf-echo-10x1.txt; the other three
# are inside Shard::pass (3.2 % there).
set -euo pipefail
cd "$(dirname "$0")/../../.."
git worktree add -f /tmp/trims fd5b575
( cd /tmp/trims && cargo build --release --locked -p mc-service && cp target/release/mc-service /tmp/mc-service-base )
( cd /tmp/trims && git apply "$OLDPWD/bench/results/20261205T203600Z-syscall-trims-paired/trims.diff" \
  && cargo build --release --locked -p mc-service && cp target/release/mc-service /tmp/mc-service-trim )
cargo build --release --locked -p mc-bench
bench/paired.sh echo 10 1 6 /tmp/mc-service-base /tmp/mc-service-trim
bench/paired.sh echo 10 1 6 /tmp/mc-service-trim /tmp/mc-service-base
