#!/usr/bin/env python3
"""Summarise bench/paired.sh output: each trial binary against the base, pair by pair.

    bench/scripts/paired-summary.py BASE TRIAL FILE...

FILE holds paired.sh's lines (`run binary µs-per-op user-µs steal ...`); two
consecutive lines of the same run number from BASE and TRIAL, in either order, are one
pair. Prints, per file, both builds' medians (and means) of the CPU per operation and
of its user-space part, and the trial's difference from the base per pair: its mean, one
standard error and how many pairs the trial was cheaper in. Pairs differ by the change;
runs differ by the host's drift, which is why the difference is taken per pair
(bench/README.md, "Paired runs of two builds").
"""
import statistics as st
import sys


def pairs(path, base, trial):
    rows = [l.split() for l in open(path) if l.strip() and not l.startswith("#")]
    out = []
    for a, b in zip(rows[::2], rows[1::2]):
        by = {a[1]: a, b[1]: b}
        if a[0] == b[0] and base in by and trial in by:
            out.append((by[base], by[trial]))
    return out


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    base, trial = sys.argv[1], sys.argv[2]
    for path in sys.argv[3:]:
        ps = pairs(path, base, trial)
        if len(ps) < 2:
            sys.exit(f"{path}: {len(ps)} pair(s) of {base} and {trial}; need at least 2")
        n = len(ps)
        b = [float(x[2]) for x, _ in ps]
        t = [float(y[2]) for _, y in ps]
        bu = [float(x[3]) for x, _ in ps]
        tu = [float(y[3]) for _, y in ps]
        d = [y - x for x, y in zip(b, t)]
        du = [y - x for x, y in zip(bu, tu)]
        print(f"{path.rsplit('/', 1)[-1]}: {n} pairs")
        print(f"  base: median {st.median(b):.2f} (mean {st.mean(b):.2f}), user space {st.median(bu):.2f} µs per op")
        print(f"  {trial}: median {st.median(t):.2f} (mean {st.mean(t):.2f}), user space {st.median(tu):.2f}")
        print(f"  trial - base: {st.mean(d):+.2f} ± {st.stdev(d) / n ** 0.5:.2f} (one standard error); "
              f"user space {st.mean(du):+.2f} ± {st.stdev(du) / n ** 0.5:.2f}; trial lower in {sum(x < 0 for x in d)} of {n}")


main()
