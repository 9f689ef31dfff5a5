#!/usr/bin/env bash
# The shard parked with one ppoll per park (commit a2c6a12) against the io_uring parker
# it replaces (02800a5) and the epoll parker before that (fd5b575, registrations made
# once, epoll_pwait2), in paired runs (bench/paired.sh: one shard on CPU 0, mc-loadgen
# on CPU 1, each order in turn).
set -euo pipefail
cd "$(dirname "$0")/../../.."
build() { # commit, output
    rm -rf /tmp/parker-ab && git worktree add -f /tmp/parker-ab "$1"
    ( cd /tmp/parker-ab && cargo build --release --locked -p mc-service \
      && cp target/release/mc-service "$2" )
    git worktree remove --force /tmp/parker-ab
}
build fd5b575 /tmp/mc-service-epoll
build 02800a5 /tmp/mc-service-ring
build a2c6a12 /tmp/mc-service-ppoll
cargo build --release --locked -p mc-bench
E=/tmp/mc-service-epoll R=/tmp/mc-service-ring P=/tmp/mc-service-ppoll
bench/paired.sh echo 10 1 4 $E $R $P; bench/paired.sh echo 10 1 4 $P $R $E   # echo10x1.txt
bench/paired.sh echo 1 1 3 $E $R $P;  bench/paired.sh echo 1 1 3 $P $R $E    # echo1x1.txt
bench/paired.sh echo 100 8 3 $E $R $P; bench/paired.sh echo 100 8 3 $P $R $E # echo100x8.txt
bench/paired.sh fanout 10 3 $E $R $P; bench/paired.sh fanout 10 3 $P $R $E   # fanout10.txt
# How long a killed server's ports stay taken after its exit (kill-rebind.txt).
for b in $E $R $P; do python3 "$(dirname "$0")/kill-rebind.py" $b 20 webtransport; done
for b in $E $R $P; do python3 "$(dirname "$0")/kill-rebind.py" $b 20 http; done
