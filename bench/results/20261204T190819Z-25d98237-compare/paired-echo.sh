#!/bin/bash
# usage: paired-echo.sh N SESSIONS WINDOW buildA buildB ...
# Paired runs of two release builds (target/ab/mc-service-<build>) on echo: the server
# pinned to CPU 0, mc-loadgen to CPU 1, 2 s warm-up and 6 s measured per run; prints
# run, build, server µs per round trip, of it in user space, % steal, round trips/s.
OUT=$(mktemp)
cd "$(dirname "$0")/../../.."
N=$1; S=$2; W=$3; shift 3
for i in $(seq $N); do
 for b in "$@"; do
  pkill -9 mc-service; sleep 0.3
  DEV=$(mktemp -d)
  taskset -c 0 target/ab/mc-service-$b --dev --enable-echo --shards 1 --dev-dir $DEV --webtransport-bind-address 127.0.0.1:14533 --http-bind-address 127.0.0.1:18533 --log-filter warn --capacity 100000 --max-sessions-per-ip 1000000 --drain-timeout-secs 1 >/dev/null 2>&1 &
  SP=$!
  for j in $(seq 50); do curl -sf http://127.0.0.1:18533/ready >/dev/null && break; sleep 0.1; done
  taskset -c 1 target/release/mc-loadgen --progress 0 --json "$OUT" --warmup 2 --duration 6 --server-pid $SP --threads 1 echo --target https://127.0.0.1:14533/echo --dev-dir $DEV --sessions $S --window $W --size 64 >/dev/null 2>&1
  python3 -c "
import json;w=json.load(open('$OUT'))['window'];s=w['server'][0]
print('$i $b %.3f %.3f %.1f %d'%(s['us_per_op'],s['user_us_per_op'],s.get('steal_pct',0),w['ops_per_s']))"
  kill -9 $SP; rm -rf $DEV
 done
done
rm -f "$OUT"
