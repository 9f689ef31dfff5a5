#!/usr/bin/env bash
# The fan-out at 10 mutes/s and echo 100 x 8, paired: the build before this stop
# (8c90f2f) against its head (c08b448), four pairs in each order. The head's changes on
# these paths: a shard-wide count of queued outbound bytes kept after each call into a
# connection, a per-meeting budget checked on each mute, no layout recomputation on a
# mute. Run from the repository root after
#   git checkout 8c90f2f && cargo build --release -p mc-service && cp target/release/mc-service target/ab/mc-service-8c90f2f
#   git checkout c08b448 && cargo build --release -p mc-service -p mc-bench && cp target/release/mc-service target/ab/mc-service-c08b448
set -euo pipefail
out=bench/results/20261207T080100Z-stop-paired
a=target/ab/mc-service-8c90f2f
b=target/ab/mc-service-c08b448
bench/paired.sh fanout 10 4 "$a" "$b" | tee "$out/fanout10.txt"
bench/paired.sh fanout 10 4 "$b" "$a" | tee -a "$out/fanout10.txt"
bench/paired.sh echo 100 8 4 "$a" "$b" | tee "$out/echo100x8.txt"
bench/paired.sh echo 100 8 4 "$b" "$a" | tee -a "$out/echo100x8.txt"
# A second sitting of the fan-out, right after the first.
bench/paired.sh fanout 10 4 "$b" "$a" | tee "$out/fanout10-second.txt"
bench/paired.sh fanout 10 4 "$a" "$b" | tee -a "$out/fanout10-second.txt"
