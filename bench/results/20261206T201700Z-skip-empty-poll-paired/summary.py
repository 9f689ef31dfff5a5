#!/usr/bin/env python3
"""Pairs of bench/paired.sh fanout lines (paired.txt): the trial build against the base,
per pair, as summary.txt holds them."""
import os
import statistics as st

HERE = os.path.dirname(os.path.abspath(__file__))
BASE, TRIAL = "/tmp/mc-service-base", "/tmp/mc-service-skip"

rows = [l.split() for l in open(os.path.join(HERE, "paired.txt")) if l.strip()]
ps = []
for i in range(0, len(rows) - 1, 2):
    by = {rows[i][1]: rows[i], rows[i + 1][1]: rows[i + 1]}
    ps.append((by[BASE], by[TRIAL]))
n = len(ps)
base = [float(b[2]) for b, _ in ps]
tri = [float(t[2]) for _, t in ps]
d = [t - b for b, t in zip(base, tri)]
du = [float(t[3]) - float(b[3]) for b, t in ps]
print(f"{n} pairs")
print(f"  base: median {st.median(base):.2f} (mean {st.mean(base):.2f}), user space {st.median(float(b[3]) for b, _ in ps):.2f} µs per delivery")
print(f"  {TRIAL}: median {st.median(tri):.2f} (mean {st.mean(tri):.2f}), user space {st.median(float(t[3]) for _, t in ps):.2f}")
print(f"  trial - base: {st.mean(d):+.2f} ± {st.stdev(d) / n ** 0.5:.2f} (one standard error); "
      f"user space {st.mean(du):+.2f} ± {st.stdev(du) / n ** 0.5:.2f}; trial lower in {sum(x < 0 for x in d)} of {n}")
