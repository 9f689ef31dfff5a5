#!/usr/bin/env bash
# What does netfilter's connection tracking cost the fan-out and its plain-UDP floor on
# loopback?
#
# A host where a container runtime has set up port forwarding (podman's netavark, for
# one, adds `table ip nat` and `table ip filter`) has connection tracking on in its
# root network namespace: every UDP datagram, loopback included, is looked up in (and
# may add to) the conntrack table. bench/compare.sh runs on 127.0.0.1 in that namespace,
# so its figures carry that lookup, the servers' and the floor's alike.
#
# This script runs bench/results/20261206T164000Z-fanout-veth/run.sh on loopback
# (MODES=loopback, one run each) PAIRS times with the host's nftables ruleset as it is
# and with it emptied (`nft flush ruleset`, which takes connection tracking off in the
# namespace), alternating which comes first, and restores the ruleset on exit. Its
# runs.txt is the wrapped script's lines, each prefixed with `conntrack=on|off`.
#
# PAIRS (default 3), OUT (default: this directory). Needs root and nft, and what the
# wrapped script needs.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here/../../.."
PAIRS=${PAIRS:-3}
OUT=${OUT:-$here}
wrapped=bench/results/20261206T164000Z-fanout-veth/run.sh
saved=$(mktemp)
work=$(mktemp -d)
nft list ruleset >"$saved"
restore() {
    nft flush ruleset
    nft -f "$saved"
    rm -rf "$saved" "$work"
}
trap restore EXIT
[[ -s $saved ]] || { echo "run.sh: the ruleset is empty: nothing to compare" >&2; exit 2; }

: >"$OUT/runs.txt"
for pair in $(seq "$PAIRS"); do
    order="on off"
    ((pair % 2 == 0)) && order="off on"
    for ct in $order; do
        nft flush ruleset
        [[ $ct == on ]] && nft -f "$saved"
        RUNS=1 MODES=loopback OUT="$work" "$wrapped" >/dev/null
        sed "s/^/conntrack=$ct pair=$pair /" "$work/runs.txt" >>"$OUT/runs.txt"
        tail -n 2 "$OUT/runs.txt"
    done
done
python3 "$here/summary.py" "$OUT/runs.txt" >"$OUT/summary.txt"
cat "$OUT/summary.txt"
