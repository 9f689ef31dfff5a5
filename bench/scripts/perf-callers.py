#!/usr/bin/env python3
"""How much of a profile runs under given frames, and who called the hottest of them.

Reads `perf script -F comm,ip,sym` (the layout perf_script.py reads) on standard input.
For each SYMBOL given: the share of all samples with it anywhere on their stack, and,
for the samples where it is the innermost frame, the callers (the next two frames) that
took most of them.

    perf script -i perf.data -F comm,ip,sym | python3 bench/scripts/perf-callers.py \\
        _raw_spin_unlock_irqrestore __x64_sys_epoll_ctl

A kernel that releases a lock with interrupts disabled shows the work done under the
lock at the release (`_raw_spin_unlock_irqrestore`) when perf samples with a timer: the
callers say whose lock it was.
"""
import sys
from collections import Counter

from perf_script import samples

CALLERS = 3


def main():
    wanted = sys.argv[1:]
    total = 0
    under = Counter()
    callers = {s: Counter() for s in wanted}
    innermost = Counter()
    for _, frames in samples(sys.stdin):
        total += 1
        names = [symbol.replace(" (inlined)", "") for _, symbol in frames]
        for s in set(names) & set(wanted):
            under[s] += 1
        if names and names[0] in callers:
            innermost[names[0]] += 1
            callers[names[0]][" < ".join(names[1:3]) or "(no caller)"] += 1
    print(f"# {total} samples; for each frame: the share of samples with it on the stack, "
          f"and its callers where it is the innermost frame (perf-callers.py)")
    if total == 0:
        return
    for s in wanted:
        print(f"{100.0 * under[s] / total:5.2f} %  under {s}; innermost in "
              f"{100.0 * innermost[s] / total:.2f} %")
        for chain, n in callers[s].most_common(CALLERS):
            print(f"   {100.0 * n / total:5.2f} %  called from {chain}")


if __name__ == "__main__":
    main()
