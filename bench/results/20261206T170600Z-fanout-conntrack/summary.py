"""Medians of run.sh's runs.txt: the fan-out's and the plain floor's server CPU per
delivered notification on loopback, with connection tracking on and off."""
import re
import statistics
import sys

rows = {}
for line in open(sys.argv[1]):
    kv = dict(re.findall(r"(\S+)=\s*(\S+)", line))
    kind = line.split()[3]
    rows.setdefault((kv["conntrack"], kind), []).append(kv)


def med(runs, field):
    return statistics.median(float(r[field]) for r in runs)


print("medians over pairs; server CPU per delivered notification in µs, on loopback")
print("(process: mc-service's /proc/PID/stat, or udp-floor's server thread; cpu0: all of CPU 0)")
print(f"{'conntrack':9} | {'mc proc':>7} {'plain':>6} {'ratio':>5} | {'mc cpu0':>7} {'plain':>6} {'ratio':>5} | "
      f"{'fan-out p99 ms client, server':>29} | {'runs':>4}")
for ct in ("on", "off"):
    mc, pl = rows.get((ct, "mc")), rows.get((ct, "plain"))
    if not mc or not pl:
        continue
    mp, lp = med(mc, "process-us"), med(pl, "process-us")
    m0, l0 = med(mc, "cpu0-us"), med(pl, "cpu0-us")
    p99 = f"{med(mc, 'fanout-p99-ms'):.1f}, {med(mc, 'server-p99-ms'):.1f}"
    print(f"{ct:9} | {mp:7.2f} {lp:6.2f} {mp / lp:5.2f} | {m0:7.2f} {l0:6.2f} {m0 / l0:5.2f} | "
          f"{p99:>29} | {len(mc):>4}")

print()
print("per pair, process µs per delivery: on − off")
pairs = sorted({r["pair"] for runs in rows.values() for r in runs}, key=int)


def one(ct, kind, pair):
    return next(float(r["process-us"]) for r in rows[(ct, kind)] if r["pair"] == pair)


for p in pairs:
    print(f"pair {p}: mc {one('on', 'mc', p) - one('off', 'mc', p):+.2f}, "
          f"plain {one('on', 'plain', p) - one('off', 'plain', p):+.2f}")
