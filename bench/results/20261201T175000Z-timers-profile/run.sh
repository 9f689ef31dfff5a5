#!/bin/bash
# usage: run.sh BIN OUT
# Fan-out at 10 mutes/s to a meeting of 1,000 on one shard (CPU 0), mc-loadgen on CPU 1,
# recorded with perf for 10 s from the measured window's start when PERF=1:
#   PERF=1 OUTDIR=/tmp/x bench/results/20261201T175000Z-timers-profile/run.sh target/release/mc-service NAME
#   perf report -i /tmp/x/NAME.data --children --stdio -g none | grep -E "Timers::|Phase as|poll_timeout|prefetch|deliver_many"
OUTDIR=${OUTDIR:-/tmp}
BIN=$1; OUT=$2
cd "$(dirname "$0")/../../.."
pkill -9 mc-service; sleep 0.5
DEV=$(mktemp -d target/compare-dev.XXXXXX)
taskset -c 0 $BIN --dev --enable-echo --shards 1 --dev-dir $DEV --webtransport-bind-address 127.0.0.1:14533 --http-bind-address 127.0.0.1:18533 --log-filter warn --capacity 100000 --max-sessions-per-ip 1000000 --max-participants-per-meeting 2000 --drain-timeout-secs 1 > $OUTDIR/server.log 2>&1 &
SPID=$!
sleep 2
taskset -c 1 target/release/mc-loadgen --progress 0 --json $OUTDIR/$OUT.json --warmup 20 --duration 10 --server-pid $SPID --server-metrics http://127.0.0.1:18533/metrics --threads 1 meeting --target https://127.0.0.1:14533/ --dev-dir $DEV --sizes 1x1000 --mix mute=100 --rate 10 --join-timeout 120 --drain 30 > $OUTDIR/$OUT.txt 2> $OUTDIR/$OUT.err &
LPID=$!
if [ -n "$PERF" ]; then
  until grep -q "measured window opens" $OUTDIR/$OUT.err; do sleep 0.2; done
  perf record --call-graph dwarf,16384 -F 999 -p $SPID -o $OUTDIR/$OUT.data -- sleep 10 2>/dev/null >/dev/null
fi
wait $LPID
kill $SPID; wait
rm -rf $DEV
