#!/usr/bin/env bash
# Many small meetings on one shard: MEETINGS meetings of 2, mute toggles at RATE a second
# in all (each reaches both participants), the server's CPU per delivered notification
# from mc-loadgen (`--server-pid`). One shard pinned to CPU 0, the generator to CPU 1.
# What grows with the number of meetings, and not with the messages, shows here.
#
#   MC_BIN=<mc-service binary> LABEL=<name> MEETINGS=<n> RATE=<msg/s> run.sh
#
# Run from the repository root after `cargo build --release -p mc-service -p mc-bench`.
set -euo pipefail
out=$(dirname "$0")
bin=${MC_BIN:-target/release/mc-service}
label=${LABEL:-$(basename "$bin")}
meetings=${MEETINGS:-4000}
rate=${RATE:-1000}
name=$label-$meetings-$rate
# shellcheck source=../../scripts/lib.sh
source bench/scripts/lib.sh
start_dev_mc "$bin" 0 --shards 1 --capacity 100000 --max-sessions-per-ip 1000000
taskset -c 1 target/release/mc-loadgen --progress 0 --warmup 5 --duration 20 --server-pid "$MC_PID" \
  --threads 1 --json "$out/$name.json" meeting --target https://127.0.0.1:14433/ \
  --dev-dir "$DEV" --sizes "${meetings}x2" --mix mute=100 --rate "$rate" --join-timeout 300 --drain 30 \
  >"$out/$name.txt" 2>&1 || echo "mc-loadgen exit $?" >>"$out/$name.txt"
line=$(delivery_line "$out/$name.json")
echo "$name: $line" | tee -a "$out/summary.txt"
