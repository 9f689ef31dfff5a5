#!/usr/bin/env bash
# A meeting's fan-out across shards: one meeting of PARTICIPANTS on a server of two shards
# (CPUs 0 and 1), mute toggles at RATE a second, the generator on CPU 1 with one session
# per client socket so the kernel spreads the sessions over both shards' sockets. About
# half the recipients are on the shard that does not own the meeting: each message
# reaches them as one mesh message. Reports the server's CPU per delivered notification
# (mc-loadgen `--server-pid`) and how the sessions were spread.
#
#   MC_BIN=<mc-service binary> LABEL=<name> PARTICIPANTS=<n> RATE=<msg/s> run.sh
#
# Run from the repository root after `cargo build --release -p mc-service -p mc-bench`.
# The generator shares CPU 1 with a shard: compare builds in alternating runs, not with
# the one-shard figures.
set -euo pipefail
out=$(dirname "$0")
bin=${MC_BIN:-target/release/mc-service}
label=${LABEL:-$(basename "$bin")}
participants=${PARTICIPANTS:-500}
rate=${RATE:-10}
name=$label-$participants-$rate
# shellcheck source=../../scripts/lib.sh
source bench/scripts/lib.sh
start_dev_mc "$bin" 0,1 --shards 2 --capacity 100000 --max-sessions-per-ip 1000000 \
  --max-participants-per-meeting "$participants"
taskset -c 1 target/release/mc-loadgen --progress 0 --warmup 5 --duration 20 --server-pid "$MC_PID" \
  --threads 1 --json "$out/$name.json" meeting --sessions-per-endpoint 1 \
  --target https://127.0.0.1:14433/ --dev-dir "$DEV" --sizes "1x$participants" --mix mute=100 \
  --rate "$rate" --join-timeout 120 --drain 30 \
  >"$out/$name.txt" 2>&1 || echo "mc-loadgen exit $?" >>"$out/$name.txt"
spread=$(curl -s 127.0.0.1:18080/metrics | awk '/^mc_connections_active\{/ {printf "%s ", $0}')
line=$(delivery_line "$out/$name.json")
echo "$name: $line; after the run: $spread" | tee -a "$out/summary.txt"
