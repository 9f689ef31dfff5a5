"""Medians of run.sh's runs.txt: server CPU per round trip of both servers and their ratio."""
import re
import statistics
import sys

rows = {}
for line in open(sys.argv[1]):
    f = line.split()
    kv = dict(re.findall(r"(\S+)=\s*(\S+)", line))
    key = (f[0], f[2], kv["spe"])
    rows.setdefault(key, {}).setdefault(f[1], []).append(kv)


def med(runs, field):
    return statistics.median(float(r[field]) for r in runs)


print("medians over runs; server CPU per round trip in µs (process: /proc/PID/stat; cpu0: all of CPU 0)")
print("spe = sessions per client socket; steal = CPU 0's stolen ticks per run (of 600: 6 s at 100 ticks per second), median")
print(f"{'mode':8} {'op':9} {'spe':3} | {'mc proc':>7} {'peer':>6} {'ratio':>5} | "
      f"{'mc cpu0':>7} {'peer':>6} {'ratio':>5} | {'mc rt/s':>8} {'peer rt/s':>9} | {'steal mc/peer':>13}")
for (mode, op, spe), by in sorted(rows.items(), key=lambda kv: (kv[0][0], kv[0][1], -int(kv[0][2]))):
    mc, peer = by["mc"], by["peer"]
    mp, pp = med(mc, "process-us"), med(peer, "process-us")
    m0, p0 = med(mc, "cpu0-us"), med(peer, "cpu0-us")
    steal = f"{med(mc, 'cpu0-steal-ticks'):.0f}/{med(peer, 'cpu0-steal-ticks'):.0f}"
    print(f"{mode:8} {op:9} {spe:3} | {mp:7.2f} {pp:6.2f} {mp / pp:5.2f} | "
          f"{m0:7.2f} {p0:6.2f} {m0 / p0:5.2f} | {med(mc, 'rt/s'):8.0f} {med(peer, 'rt/s'):9.0f} | {steal:>13}")

print()
print("server sleeps (voluntary context switches) and CPU 0's wake-up/function-call IPIs, per round trip, medians")
print(f"{'mode':8} {'op':9} {'spe':3} | {'mc sleeps':>9} {'peer':>6} | {'mc IPIs':>7} {'peer':>6}")
for (mode, op, spe), by in sorted(rows.items(), key=lambda kv: (kv[0][0], kv[0][1], -int(kv[0][2]))):
    mc, peer = by["mc"], by["peer"]
    if "sleeps-per-rt" not in mc[0]:
        continue
    print(f"{mode:8} {op:9} {spe:3} | {med(mc, 'sleeps-per-rt'):9.3f} {med(peer, 'sleeps-per-rt'):6.3f} | "
          f"{med(mc, 'cpu0-ipis-per-rt'):7.3f} {med(peer, 'cpu0-ipis-per-rt'):6.3f}")
