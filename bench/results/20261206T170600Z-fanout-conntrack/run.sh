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
# (MODES=loopback, one run each) PAIRS times with connection tracking on and with
# loopback's UDP exempted from it, alternating which comes first. It uses two tables
# of its own and leaves the host's alone (rewriting tables that iptables-nft manages
# with `nft` leaves them unreadable to iptables, and to container runtimes that use it):
#
#   ip mcbench-conntrack  empty NAT chains on every hook and a forwarding rule on the
#                         connection state, as a container runtime's port forwarding adds
#                         them: connection tracking (which the `ct` rule turns on) and
#                         NAT lookups for every datagram in the namespace, whatever the
#                         host has;
#   ip mcbench-notrack    (off only) `notrack` for every UDP datagram on `lo`, at the raw
#                         priority before conntrack, as an operator would exempt a
#                         server's port.
#
# Both are deleted on exit. Its runs.txt is the wrapped script's lines, each prefixed
# with `conntrack=on|off`.
#
# PAIRS (default 3), OUT (default: this directory). Needs root and nft, and what the
# wrapped script needs.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here/../../.."
PAIRS=${PAIRS:-3}
OUT=${OUT:-$here}
wrapped=bench/results/20261206T164000Z-fanout-veth/run.sh
work=$(mktemp -d)
# untrack: exempt loopback's UDP from tracking; track: end the exemption.
untrack() {
    nft -f - <<NFT
table ip mcbench-notrack {
    chain prerouting {
        type filter hook prerouting priority raw; policy accept;
        iif "lo" meta l4proto udp notrack
    }
    chain output {
        type filter hook output priority raw; policy accept;
        oif "lo" meta l4proto udp notrack
    }
}
NFT
}
track() { nft delete table ip mcbench-notrack 2>/dev/null || true; }
cleanup() {
    track
    nft delete table ip mcbench-conntrack 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
track
nft delete table ip mcbench-conntrack 2>/dev/null || true
nft -f - <<NFT
table ip mcbench-conntrack {
    chain prerouting { type nat hook prerouting priority dstnat; policy accept; }
    chain input { type nat hook input priority 100; policy accept; }
    chain output { type nat hook output priority -100; policy accept; }
    chain postrouting { type nat hook postrouting priority srcnat; policy accept; }
    chain forward {
        type filter hook forward priority filter; policy accept;
        ct state established,related accept
    }
}
NFT

: >"$OUT/runs.txt"
for pair in $(seq "$PAIRS"); do
    order="on off"
    ((pair % 2 == 0)) && order="off on"
    for ct in $order; do
        if [[ $ct == off ]]; then untrack; else track; fi
        RUNS=1 MODES=loopback OUT="$work" "$wrapped" >/dev/null
        sed "s/^/conntrack=$ct pair=$pair /" "$work/runs.txt" >>"$OUT/runs.txt"
        tail -n 2 "$OUT/runs.txt"
    done
done
python3 "$here/summary.py" "$OUT/runs.txt" >"$OUT/summary.txt"
cat "$OUT/summary.txt"
