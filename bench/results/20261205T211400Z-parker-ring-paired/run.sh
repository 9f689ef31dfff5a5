#!/usr/bin/env bash
# The shard parked through an io_uring of its own (commit bfdf459) against the build
# before it (fd5b575, parking in epoll_pwait2 on registrations made once), in paired
# runs (bench/paired.sh: one shard on CPU 0, mc-loadgen on CPU 1, each order in turn).
# First, the idea tested with epoll alone: the socket registered before each watching
# park and removed after it (epdel.diff here, on fd5b575).
set -euo pipefail
cd "$(dirname "$0")/../../.."
here=bench/results/20261205T211400Z-parker-ring-paired
build() { # commit, output, [patch]
    rm -rf /tmp/parker-ab && git worktree add -f /tmp/parker-ab "$1"
    ( cd /tmp/parker-ab && { [ -z "${3:-}" ] || git apply "$OLDPWD/$3"; } \
      && cargo build --release --locked -p mc-service && cp target/release/mc-service "$2" )
    git worktree remove --force /tmp/parker-ab
}
build fd5b575 /tmp/mc-service-base
build fd5b575 /tmp/mc-service-epdel "$here/epdel.diff"
build bfdf459 /tmp/mc-service-ring
cargo build --release --locked -p mc-bench
B=/tmp/mc-service-base R=/tmp/mc-service-ring
bench/paired.sh echo 10 1 5 $B /tmp/mc-service-epdel; bench/paired.sh echo 10 1 5 /tmp/mc-service-epdel $B  # echo10x1-epoll-add-del.txt
bench/paired.sh echo 10 1 5 $B $R;   bench/paired.sh echo 10 1 5 $R $B    # echo10x1.txt
bench/paired.sh echo 100 8 4 $B $R;  bench/paired.sh echo 100 8 4 $R $B   # echo100x8.txt
bench/paired.sh fanout 10 3 $B $R;   bench/paired.sh fanout 10 3 $R $B    # fanout10.txt
bench/paired.sh echo 1 1 4 $B $R;    bench/paired.sh echo 1 1 4 $R $B     # echo1x1.txt
bench/paired.sh echo 10 1 4 $B $R;   bench/paired.sh echo 10 1 4 $R $B    # echo10x1-bfdf459.txt
