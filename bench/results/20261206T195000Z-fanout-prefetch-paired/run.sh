#!/usr/bin/env bash
# Two changes to when the fan-out's loops ask for a connection's memory, each against the
# build as committed (1070447, the server of 6e0169d), in paired runs of the fan-out at
# 10 mutes/s (bench/paired.sh). A profile (profile-annotate.txt) showed the reads and
# prefetches of the next connection's keys waiting behind the 103 cache lines of a slot.
#   - order.diff ("keysfirst"): the transmit and delivery loops ask for the next
#     connection's keys and signaling session first, the slot of the one after it second
#     (was: the slot first).
#   - distance.diff ("three"): the delivery loop, the transmit loop and the receive
#     hand-over ask for a connection's slot three connections ahead (was: two), so it
#     has two steps to arrive before its keys are looked up.
# bench/scripts/paired-summary.py prints summary.txt from paired-order.txt and
# paired-distance.txt.
set -euo pipefail
cd "$(dirname "$0")/../../.."
HERE=bench/results/20261206T195000Z-fanout-prefetch-paired
git worktree add -f /tmp/fanout-prefetch 1070447
( cd /tmp/fanout-prefetch && cargo build --release --locked -p mc-service && cp target/release/mc-service /tmp/mc-service-base )
for trial in order:keysfirst distance:three; do
  ( cd /tmp/fanout-prefetch && git checkout -q -- src && git apply "$OLDPWD/$HERE/${trial%%:*}.diff" \
    && cargo build --release --locked -p mc-service && cp target/release/mc-service "/tmp/mc-service-${trial##*:}" )
done
( cd /tmp/fanout-prefetch && git checkout -q -- src )
cargo build --release --locked -p mc-bench
{
  bench/paired.sh fanout 10 4 /tmp/mc-service-base /tmp/mc-service-keysfirst
  bench/paired.sh fanout 10 4 /tmp/mc-service-keysfirst /tmp/mc-service-base
  bench/paired.sh fanout 10 2 /tmp/mc-service-base /tmp/mc-service-keysfirst
  bench/paired.sh fanout 10 2 /tmp/mc-service-keysfirst /tmp/mc-service-base
} | tee "$HERE/paired-order.txt"
{
  for _ in 1 2; do
    bench/paired.sh fanout 10 3 /tmp/mc-service-base /tmp/mc-service-three
    bench/paired.sh fanout 10 3 /tmp/mc-service-three /tmp/mc-service-base
  done
} | tee "$HERE/paired-distance.txt"
{
  python3 bench/scripts/paired-summary.py /tmp/mc-service-base /tmp/mc-service-keysfirst "$HERE/paired-order.txt"
  python3 bench/scripts/paired-summary.py /tmp/mc-service-base /tmp/mc-service-three "$HERE/paired-distance.txt"
} | tee "$HERE/summary.txt"
