"""Each symbol's server CPU per round trip in the two profiles of run.sh, and its growth.

A symbol's share of the samples times the run's server µs per round trip (from the load
generator's report) is its cost per round trip; the table lists the symbols whose cost
grew most from 8 sessions per client socket to 1, then the totals by kind.
"""
import re
import sys

here = sys.argv[1]


def us_per_rt(spe):
    text = open(f"{here}/spe{spe}.txt").read()
    m = re.search(r"server CPU \(pid \d+\): [\d.]+ cores, ([\d.]+) µs per round trip", text)
    return float(m.group(1))


def symbols(spe):
    us = us_per_rt(spe)
    out = {}
    section = None
    for line in open(f"{here}/profile-spe{spe}.txt"):
        if line.startswith("#"):
            section = "sym" if "--sort sym" in line else "dso"
            continue
        if section != "sym":
            continue
        pct, name = line.split(None, 1)
        out[name.strip()] = float(pct.rstrip("%")) * us * 10  # ns per round trip
    return us, out


us8, a = symbols(8)
us1, b = symbols(1)
print(f"server µs per round trip: 8 sessions per socket {us8:.2f}, 1 per socket {us1:.2f} ({us1 / us8 - 1:+.0%})")
print()
print("ns per round trip: 8 per socket, 1 per socket, growth; symbol ([k] kernel, [.] user space)")
rows = sorted(set(a) | set(b), key=lambda k: a.get(k, 0) - b.get(k, 0))
for k in rows[:30]:
    print(f"{a.get(k, 0):6.1f} {b.get(k, 0):6.1f} {b.get(k, 0) - a.get(k, 0):+6.1f}  {k}")
print()
for kind, mark in (("kernel", "[k]"), ("user space", "[.]")):
    x = sum(v for k, v in a.items() if k.startswith(mark))
    y = sum(v for k, v in b.items() if k.startswith(mark))
    print(f"{kind}, top 200 symbols: {x:.0f} ns -> {y:.0f} ns ({y - x:+.0f})")
