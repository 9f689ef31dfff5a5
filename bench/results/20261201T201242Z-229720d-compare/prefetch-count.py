#!/usr/bin/env python3
"""Shard samples whose innermost frame is a prefetch instruction, by the loop that asked.

    perf script -F comm,ip,sym -i perf-fanout.data | python3 prefetch-count.py
"""
import collections
import sys

total, by_caller, stack = 0, collections.Counter(), []
comm = None
for line in list(sys.stdin) + ["\n"]:
    if not line.strip():
        if comm and comm.startswith("shard") and stack:
            total += 1
            if "prefetch" in stack[0]:
                caller = next((f for f in stack if "prefetch" not in f and "mm_prefetch" not in f), "?")
                by_caller[caller] += 1
        comm, stack = None, []
    elif line.startswith("\t"):
        parts = line.split(None, 1)
        stack.append((parts[1] if len(parts) > 1 else parts[0]).replace(" (inlined)", "").strip())
    else:
        comm = line.split()[0]
n = sum(by_caller.values())
print(f"shard samples {total}; on a prefetch instruction {n} ({100 * n / total:.1f} %)")
for caller, count in by_caller.most_common():
    print(f"  {count:4d}  {caller}")
