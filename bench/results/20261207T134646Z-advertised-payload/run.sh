#!/usr/bin/env bash
# What clients send us: session setup with max_udp_payload_size advertised at 1472 (the
# build before, BEFORE) and at 1200 (AFTER), two sittings each, alternating; then echo
# 10 x 1 in paired runs of the two, three pairs in each order. From the repository root,
# after `cargo build --release -p mc-service -p mc-bench`, with the two builds copied to
# target/ab/.
set -euo pipefail
BEFORE=${BEFORE:-target/ab/mc-service-head}
AFTER=${AFTER:-target/ab/mc-service-adv1200}
for i in 1 2; do
    for b in "$BEFORE" "$AFTER"; do
        bench/compare.sh --skip-build --ops setup --mc-bin "$b"
    done
done
bench/paired.sh echo 10 1 3 "$BEFORE" "$AFTER"
bench/paired.sh echo 10 1 3 "$AFTER" "$BEFORE"
# The profile of setup: perf record -F 1999 -g -p <server pid> -- sleep 8 while
# `mc-loadgen connect --concurrency 32 --echo-bytes 32` (compare.sh's setup command line)
# runs against the server; perf report --no-children --stdio -g none --percent-limit 0.7.
