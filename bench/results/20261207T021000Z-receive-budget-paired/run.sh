#!/usr/bin/env bash
# The fan-out (1,000 participants, 10 mutes/s) of the release build of 419d6c5 and of
# fb043fa (each connection charged for the receive buffers QUIC keeps for it; named here
# by 2612e7b, that commit's hash before its message was corrected), four pairs
# in each order (bench/README.md, "Paired runs of two builds"). Both binaries were built
# with `cargo build --release --locked -p mc-service` at their commits and copied to
# target/ab/.
set -euo pipefail
cd "$(dirname "$0")/../../.."
out=bench/results/20261207T021000Z-receive-budget-paired
bench/paired.sh fanout 10 4 target/ab/mc-service-419d6c5 target/ab/mc-service-2612e7b >"$out/fanout10.txt"
bench/paired.sh fanout 10 4 target/ab/mc-service-2612e7b target/ab/mc-service-419d6c5 >>"$out/fanout10.txt"
bench/scripts/paired-summary.py target/ab/mc-service-419d6c5 target/ab/mc-service-2612e7b "$out/fanout10.txt"
# Then the same against the release build of ba6b8af (the head after the handshake
# deadline was added too), copied to target/ab/mc-service-ba6b8af.
bench/paired.sh fanout 10 4 target/ab/mc-service-419d6c5 target/ab/mc-service-ba6b8af >"$out/fanout10-head.txt"
bench/paired.sh fanout 10 4 target/ab/mc-service-ba6b8af target/ab/mc-service-419d6c5 >>"$out/fanout10-head.txt"
bench/scripts/paired-summary.py target/ab/mc-service-419d6c5 target/ab/mc-service-ba6b8af "$out/fanout10-head.txt"
