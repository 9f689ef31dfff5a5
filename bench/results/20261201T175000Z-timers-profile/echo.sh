#!/bin/bash
BIN=$1; OUT=$2
# Echo 100 sessions x 8 in flight x 64 B against one build (server CPU 0, mc-loadgen CPU 1),
# 10 s after 2 s of warm-up. Interleaved A/B, as run for echo-ab.txt:
#   for i in 1 2 3 4 5; do for b in base wheel3; do OUTDIR=/tmp/x bench/results/20261201T175000Z-timers-profile/echo.sh target/ab/$b/mc-service e-$b-$i; done; done
# then window.ops_per_s, window.server[0].us_per_op and .user_us_per_op of each JSON.
OUTDIR=${OUTDIR:-/tmp}
cd "$(dirname "$0")/../../.."
pkill -9 mc-service; sleep 0.5
DEV=$(mktemp -d target/compare-dev.XXXXXX)
taskset -c 0 $BIN --dev --enable-echo --shards 1 --dev-dir $DEV --webtransport-bind-address 127.0.0.1:14533 --http-bind-address 127.0.0.1:18533 --log-filter warn --capacity 100000 --max-sessions-per-ip 1000000 --max-participants-per-meeting 2000 --drain-timeout-secs 1 > $OUTDIR/server.log 2>&1 &
SPID=$!
sleep 2
taskset -c 1 target/release/mc-loadgen --progress 0 --json $OUTDIR/$OUT.json --warmup 2 --duration 10 --server-pid $SPID --server-metrics http://127.0.0.1:18533/metrics echo --target https://127.0.0.1:14533/echo --dev-dir $DEV --sessions ${SESS:-100} --window ${WIN:-8} --size 64 > $OUTDIR/$OUT.txt 2> $OUTDIR/$OUT.err &
LPID=$!
if [ -n "$PERF" ]; then
  until grep -q "measured window opens" $OUTDIR/$OUT.err; do sleep 0.1; done
  perf record --call-graph dwarf,16384 -F 999 -p $SPID -o $OUTDIR/$OUT.data -- sleep 8 2>/dev/null >/dev/null
fi
wait $LPID
kill $SPID; wait
rm -rf $DEV
