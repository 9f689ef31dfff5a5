#!/usr/bin/env bash
# Echo 100 x 8, paired: the build before this stop's hardening (d9c72bd) against its
# head (4f1fce5), four pairs in each order. Run from the repository root after
#   git checkout d9c72bd && cargo build --release -p mc-service && cp target/release/mc-service target/ab/mc-service-d9c72bd
#   git checkout 4f1fce5 && cargo build --release -p mc-service -p mc-bench && cp target/release/mc-service target/ab/mc-service-4f1fce5
set -euo pipefail
out=bench/results/20261207T052500Z-hardening-paired
bench/paired.sh echo 100 8 4 target/ab/mc-service-d9c72bd target/ab/mc-service-4f1fce5 | tee "$out/echo100x8.txt"
bench/paired.sh echo 100 8 4 target/ab/mc-service-4f1fce5 target/ab/mc-service-d9c72bd | tee -a "$out/echo100x8.txt"
