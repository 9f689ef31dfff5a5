#!/usr/bin/env bash
# The fan-out at 10 mutes/s, paired: the build before the per-user budgets (0e84eee)
# against 92d455b, four pairs in each order. 92d455b's change on this path: each mute
# also spends from its user's share (one hash lookup by user id, one more bucket).
# Run from the repository root after
#   git checkout 0e84eee && cargo build --release -p mc-service && cp target/release/mc-service target/ab/mc-service-0e84eee
#   git checkout 92d455b && cargo build --release -p mc-service -p mc-bench && cp target/release/mc-service target/ab/mc-service-92d455b
set -euo pipefail
out=bench/results/20261207T095312Z-user-budget-paired
a=target/ab/mc-service-0e84eee
b=target/ab/mc-service-92d455b
bench/paired.sh fanout 10 4 "$a" "$b" | tee "$out/fanout10.txt"
bench/paired.sh fanout 10 4 "$b" "$a" | tee -a "$out/fanout10.txt"
