#!/bin/bash
# Fan-out at the same per-client traffic, two working sets: one meeting of 1,000 at
# 10 mutes/s (each mute touches 1,000 connections) against ten meetings of 100 at
# 100 mutes/s in total (each mute touches 100). Every client receives one notification
# per 100 ms either way. Prints the server CPU per delivery of each run.
set -u
cd "$(git rev-parse --show-toplevel)"
BIN=${BIN:-target/release/mc-service}
run() { # tag sizes rate
  pkill -9 mc-service; sleep 0.5
  D=$(mktemp -d /tmp/ws/dev.XXXX)
  taskset -c 0 $BIN --dev --enable-echo --shards 1 --dev-dir $D --webtransport-bind-address 127.0.0.1:14533 --http-bind-address 127.0.0.1:18533 --log-filter warn --capacity 100000 --max-sessions-per-ip 1000000 --max-participants-per-meeting 2000 --drain-timeout-secs 1 > /dev/null 2>&1 &
  sleep 2
  P=$(pgrep -f "$BIN --dev")
  taskset -c 1 target/release/mc-loadgen --progress 0 --json $OUT/$1.json --warmup 20 --duration 10 --server-pid $P --server-metrics http://127.0.0.1:18533/metrics --threads 1 meeting --target https://127.0.0.1:14533/ --dev-dir $D --sizes $2 --mix mute=100 --rate $3 --join-timeout 120 --drain 30 > $OUT/$1.txt 2>&1
  echo "$1 $2 @ $3/s: $(grep 'server CPU (pid' $OUT/$1.txt) | $(grep 'datagrams per delivered' $OUT/$1.txt)"
  kill -9 $P
}
OUT=${OUT:-/tmp/ws}
mkdir -p $OUT
for i in 1 2; do
  run one-$i 1x1000 10
  run ten-$i 10x100 100
done
