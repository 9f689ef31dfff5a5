#!/usr/bin/env python3
"""Where a shard's time goes, step by step of its loop, from DWARF call chains.

Reads `perf script -F comm,ip,sym` (each sample: a line with the thread's name, then its
frames, innermost first, each on a tab-indented line, then a blank line) on standard input and gives each sample of
a shard thread to exactly one step of the loop: the first step in STEPS whose marker
frame is on its stack. The steps therefore add up to 100 % of the shard's samples, and
a step nested in another (the `sendmmsg` inside `transmit`) is counted apart from it.

    perf record --call-graph dwarf,16384 -F 999 -p <mc-service pid> -o perf.data
    perf script -i perf.data -F comm,ip,sym | python3 bench/scripts/perf-phases.py [US_PER_OP]

With US_PER_OP (the server's CPU per operation over the profiled run) each step is also
given in microseconds per operation.
"""
import sys

from perf_script import samples, share_line

# (step, marker frames: a sample whose stack holds any of them belongs to the step).
STEPS = [
    ("transmit: sendmmsg, kernel (on loopback it also delivers into the client's socket)",
     ["__x64_sys_sendmmsg"]),
    ("transmit: quinn-proto building and sealing packets (poll_transmit)",
     ["quinn_proto::connection::Connection::poll_transmit"]),
    ("transmit: the rest (QUIC events, timers re-armed, batching)",
     ["mc_service::shard::Shard>::transmit"]),
    ("receive: recvmmsg, kernel", ["__x64_sys_recvmmsg"]),
    ("receive: quinn-proto opening and handling datagrams (handle_event)",
     ["quinn_proto::connection::Connection::handle_event"]),
    ("receive: the rest (routing by connection id, endpoint)",
     ["mc_service::quic::endpoint::QuicEndpoint::receive",
      "mc_service::quic::endpoint::QuicEndpoint::on_datagram"]),
    ("meetings: the fan-out into each recipient's stream (run_meetings)",
     ["mc_service::shard::Shard>::run_meetings"]),
    ("timers (fire_timers)", ["mc_service::shard::Shard>::fire_timers"]),
    ("driving connections: QUIC events, HTTP/3, signaling (drive)",
     ["mc_service::shard::Shard>::drive"]),
    ("mesh messages (take_messages)", ["mc_service::shard::Shard>::take_messages"]),
    ("parking: epoll_pwait2 and the switch away and back", ["shards::parker::Parker::wait"]),
    ("the rest of the pass (Shard::pass itself, counters)", ["mc_service::shard::Shard::pass"]),
]
OTHER = "outside the pass (the executor), or a stack perf did not unwind that far"


def normalise(frame):
    # `<impl mc_service::shard::Shard>::transmit` → `mc_service::shard::Shard>::transmit`,
    # so one marker matches the method whichever module of the shard defines it.
    return frame.replace("<impl ", "").replace(" (inlined)", "")


def main():
    us = float(sys.argv[1]) if len(sys.argv) > 1 else None
    counts = {name: 0 for name, _ in STEPS}
    counts[OTHER] = 0
    total = 0
    for comm, frames in samples(sys.stdin):
        if not comm.startswith("shard"):
            continue
        total += 1
        stack = "\n".join(normalise(symbol or address) for address, symbol in frames)
        for name, markers in STEPS:
            if any(m in stack for m in markers):
                counts[name] += 1
                break
        else:
            counts[OTHER] += 1
    print(f"# the shard threads' {total} samples by step of the loop "
          f"(perf-phases.py: each sample counted once, in the first step on its stack)")
    if total == 0:
        print("no samples of a shard thread (were DWARF call chains recorded?)")
        return
    for name, n in counts.items():
        print(share_line(name, n, total, us))


if __name__ == "__main__":
    main()
