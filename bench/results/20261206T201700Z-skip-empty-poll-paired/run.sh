#!/usr/bin/env bash
# What the transmit loop's last call of quinn-proto's poll_transmit costs, the one that
# returns nothing after a connection's packet: a trial build (skip.diff, not safe to
# keep) stops the loop after a lone datagram shorter than 600 bytes, which in the fan-out
# is every notification's packet. Against the build as committed (1070447, the server
# of 6e0169d), in twelve paired runs of the fan-out at 10 mutes/s, then the calls per
# delivery of both builds counted (bench/alloc-count.sh --calls), to show the trial
# removed the calls it meant to and built the same packets.
set -euo pipefail
cd "$(dirname "$0")/../../.."
HERE=bench/results/20261206T201700Z-skip-empty-poll-paired
git worktree add -f /tmp/skip-empty-poll 1070447
( cd /tmp/skip-empty-poll && cargo build --release --locked -p mc-service && cp target/release/mc-service /tmp/mc-service-base )
( cd /tmp/skip-empty-poll && git apply "$OLDPWD/$HERE/skip.diff" \
  && cargo build --release --locked -p mc-service && cp target/release/mc-service /tmp/mc-service-skip )
cargo build --release --locked -p mc-bench
for _ in 1 2; do
  bench/paired.sh fanout 10 3 /tmp/mc-service-base /tmp/mc-service-skip
  bench/paired.sh fanout 10 3 /tmp/mc-service-skip /tmp/mc-service-base
done | tee "$HERE/paired.txt"
python3 bench/scripts/paired-summary.py /tmp/mc-service-base /tmp/mc-service-skip "$HERE/paired.txt" | tee "$HERE/summary.txt"
bench/alloc-count.sh --ops fanout --short 4 --long 12 --mc-bin /tmp/mc-service-base,/tmp/mc-service-skip \
  --calls quinn_proto::connection::Connection::poll_transmit,quinn_proto::connection::Connection::populate_packet,quinn_proto::connection::Connection::handle_event
