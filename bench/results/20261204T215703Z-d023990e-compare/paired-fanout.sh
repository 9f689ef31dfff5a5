#!/bin/bash
# usage: paired-fanout.sh N RATE buildA buildB ...
# Paired runs of release builds (target/ab/mc-service-<build>) on the fan-out: one
# shard pinned to CPU 0, mc-loadgen meeting --sizes 1x1000 --mix mute=100 on CPU 1,
# 10 s warm-up and 10 s measured per run; prints run, build, server µs per delivery,
# of it in user space, % steal, server mc_fanout_duration_seconds p99 (ms).
OUT=$(mktemp)
cd "$(dirname "$0")/../../.."
N=$1; R=$2; shift 2
for i in $(seq $N); do
 for b in "$@"; do
  pkill -9 mc-service; sleep 0.3
  DEV=$(mktemp -d)
  taskset -c 0 target/ab/mc-service-$b --dev --enable-echo --shards 1 --dev-dir $DEV --webtransport-bind-address 127.0.0.1:14533 --http-bind-address 127.0.0.1:18533 --log-filter warn --capacity 100000 --max-sessions-per-ip 1000000 --max-participants-per-meeting 2000 --drain-timeout-secs 1 >/dev/null 2>&1 &
  SP=$!
  for j in $(seq 50); do curl -sf http://127.0.0.1:18533/ready >/dev/null && break; sleep 0.1; done
  taskset -c 1 target/release/mc-loadgen --progress 0 --json "$OUT" --warmup 10 --duration 10 --server-pid $SP --server-metrics http://127.0.0.1:18533/metrics --threads 1 meeting --target https://127.0.0.1:14533/ --dev-dir $DEV --sizes 1x1000 --mix mute=100 --rate $R --join-timeout 120 --drain 30 >/dev/null 2>&1
  python3 - "$OUT" $i $b <<'PY'
import json,sys
w=json.load(open(sys.argv[1]))['window'];s=w['server'][0]
fd=(w.get('server_histograms') or {}).get('mc_fanout_duration_seconds') or {}
print(sys.argv[2],sys.argv[3],'%.2f %.2f %.1f %.1f'%(s['us_per_op'],s['user_us_per_op'],s.get('steal_pct',0),1000*fd.get('p99_s',0)))
PY
  kill -9 $SP; wait $SP 2>/dev/null; rm -rf $DEV
 done
done
rm -f "$OUT"
