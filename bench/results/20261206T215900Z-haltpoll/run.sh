#!/usr/bin/env bash
# What does the guest's idle polling do to echo 10 × 1 and the fan-out, and to the
# peer's figures beside them?
#
# This host is a KVM guest (Firecracker) whose cpuidle driver is `haltpoll` with
# `haltpoll.guest_halt_poll_ns=0` on its command line: a CPU with nothing to run halts
# at once, which exits to the hypervisor, and the next datagram's wake-up has to bring it
# back with an interrupt. With a poll budget the idle CPU first spins in the guest's idle
# loop (up to the budget, grown and shrunk by the governor), so a wake-up that comes
# soon costs no exit. Time spent polling is idle time: it is charged to no process, the
# servers' CPU per operation included.
#
# The script runs `bench/compare.sh --skip-build --ops echo10x1,fanout --runs 2` in
# SITTINGS sittings (default 4), the budget alternating between 0 (the host's setting)
# and BUDGET_NS (default 200000, the kernel's own default): 0, B, B, 0, 0, B, ... It
# restores the value it found on exit. Each sitting appends a line to runs.txt naming its
# results directory (move the committed runs.txt aside to start afresh); compare.sh's own
# output goes to standard error.
#
# Needs root, and the release builds bench/compare.sh --skip-build uses.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here/../../.."
SITTINGS=${SITTINGS:-4}
BUDGET_NS=${BUDGET_NS:-200000}
param=/sys/module/haltpoll/parameters/guest_halt_poll_ns
[[ -w $param ]] || { echo "run.sh: $param is not writable (not a haltpoll guest, or not root)" >&2; exit 2; }
was=$(cat "$param")
trap 'echo "$was" >"$param"' EXIT
for ((i = 0; i < SITTINGS; i++)); do
    case $((i % 4)) in 0 | 3) ns=0 ;; *) ns=$BUDGET_NS ;; esac
    echo "$ns" >"$param"
    before=$(ls -d bench/results/*-compare | sort | tail -1)
    bench/compare.sh --skip-build --ops echo10x1,fanout --runs 2 >&2
    after=$(ls -d bench/results/*-compare | sort | tail -1)
    [[ $after != "$before" ]] || { echo "run.sh: sitting $i left no results" >&2; exit 1; }
    poll=$(cat /sys/devices/system/cpu/cpu0/cpuidle/state0/usage)
    echo "guest_halt_poll_ns=$ns $(basename "$after") cpu0-poll-entries-so-far=$poll" | tee -a "$here/runs.txt"
done
