#!/usr/bin/env bash
# Joins that wait for a signing key the server does not know, each with 99 messages of
# 256 empty statuses behind it in the same write (`joins-awaiting-keys`, 16 sessions held
# 1 s): the server's RSS before and its peak meanwhile, sampled every 50 ms. One shard
# pinned to CPU 0, the client to CPU 1.
#
#   MC_BIN=<mc-service binary> LABEL=<name> SESSIONS=<n> run.sh
#
# Run from the repository root after `cargo build --release -p mc-service -p mc-bench`.
set -euo pipefail
out=$(dirname "$0")
bin=${MC_BIN:-target/release/mc-service}
label=${LABEL:-$(basename "$bin")}
sessions=${SESSIONS:-16}
# shellcheck source=../../scripts/lib.sh
source bench/scripts/lib.sh
start_dev_mc "$bin" 0 --shards 1
rss() { awk '/VmRSS/ {print $2}' "/proc/$MC_PID/status"; }
sleep 1
idle=$(rss)
(while kill -0 "$MC_PID" 2>/dev/null; do rss; sleep 0.05; done) > "$out/$label-rss.txt" &
sampler=$!
line=$(taskset -c 1 target/release/joins-awaiting-keys --target https://127.0.0.1:14433/ \
    --dev-dir "$DEV" --sessions "$sessions" --hold-ms 1000)
kill $sampler 2>/dev/null || true
peak=$(sort -n "$out/$label-rss.txt" | tail -1)
echo "$label: $line; RSS idle $idle KiB, peak $peak KiB (+$((peak - idle)) KiB)" |
    tee -a "$out/summary.txt"
