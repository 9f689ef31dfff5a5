#!/bin/bash
# One server, two fan-out runs; with "thp", the shard's heap arena is madvised to huge
# pages (and collapsed) between the runs. Prints run 2's server CPU per delivery.
set -u
cd "$(git rev-parse --show-toplevel)"
mode=$1 tag=$2
pkill -9 mc-service; sleep 0.5
D=$(mktemp -d /tmp/hp/dev.XXXX)
taskset -c 0 target/ab/base/mc-service --dev --enable-echo --shards 1 --dev-dir $D --webtransport-bind-address 127.0.0.1:14533 --http-bind-address 127.0.0.1:18533 --log-filter warn --capacity 100000 --max-sessions-per-ip 1000000 --max-participants-per-meeting 2000 --drain-timeout-secs 1 > /tmp/hp/srv-$tag.log 2>&1 &
sleep 2
P=$(pgrep -f "target/ab/base/mc-service")
lg() { taskset -c 1 target/release/mc-loadgen --progress 0 --json /tmp/hp/$1.json --warmup 20 --duration 10 --server-pid $P --server-metrics http://127.0.0.1:18533/metrics --threads 1 meeting --target https://127.0.0.1:14533/ --dev-dir $D --sizes 1x1000 --mix mute=100 --rate 10 --join-timeout 120 --drain 30 > /tmp/hp/$1.txt 2>&1; }
lg $tag-run1
if [[ $mode == thp ]]; then
  A=$(awk '/rw-p 00000000 00:00 0/{split($1,a,"-"); if (a[1] ~ /000000$/) print a[1]}' /proc/$P/maps | while read a; do r=$(awk -v s=$a '$0 ~ "^"s"-"{f=1} f&&/^Rss:/{print $2; exit}' /proc/$P/smaps); echo "$r $a"; done | sort -n | tail -1 | awk '{print $2}')
  gdb -p $P -batch -ex "call (int)madvise(0x$A, 0x4000000, 14)" -ex "call (int)madvise(0x$A, 0x4000000, 25)" > /tmp/hp/gdb-$tag.txt 2>&1
  echo "arena 0x$A" >> /tmp/hp/gdb-$tag.txt
fi
grep AnonHugePages /proc/$P/smaps_rollup > /tmp/hp/thp-$tag.txt
lg $tag-run2
echo "$tag $(cat /tmp/hp/thp-$tag.txt) $(grep 'server CPU (pid' /tmp/hp/$tag-run2.txt)"
kill -9 $P
