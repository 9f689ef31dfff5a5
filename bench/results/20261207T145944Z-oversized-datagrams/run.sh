#!/usr/bin/env bash
# The forged-forwards run (bench/results/20261207T125000Z-forged-forwards/run.sh, which
# also counts the datagrams dropped as oversized), its results written here.
#
#   MC_BIN=<mc-service binary> LABEL=<name> SIZE=<datagram bytes> SECS=<flood seconds> run.sh
#
# Run from the repository root after `cargo build --release -p mc-service -p mc-bench`.
set -euo pipefail
OUT=$(dirname "$0") exec bench/results/20261207T125000Z-forged-forwards/run.sh
