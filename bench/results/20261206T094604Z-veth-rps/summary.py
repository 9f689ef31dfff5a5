"""Medians of run.sh's runs.txt: server CPU per round trip of both servers and their ratio,
and of the plain-UDP echo paced to the peer where runs.txt has it."""
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
order = sorted(rows.items(), key=lambda kv: (kv[0][0], kv[0][1], -int(kv[0][2])))
for (mode, op, spe), by in order:
    if "mc" not in by:
        continue
    mc, peer = by["mc"], by["peer"]
    mp, pp = med(mc, "process-us"), med(peer, "process-us")
    m0, p0 = med(mc, "cpu0-us"), med(peer, "cpu0-us")
    steal = f"{med(mc, 'cpu0-steal-ticks'):.0f}/{med(peer, 'cpu0-steal-ticks'):.0f}"
    print(f"{mode:8} {op:9} {spe:3} | {mp:7.2f} {pp:6.2f} {mp / pp:5.2f} | "
          f"{m0:7.2f} {p0:6.2f} {m0 / p0:5.2f} | {med(mc, 'rt/s'):8.0f} {med(peer, 'rt/s'):9.0f} | {steal:>13}")

print()
print("server sleeps (voluntary context switches) and CPU 0's wake-up/function-call IPIs, per round trip, medians")
print(f"{'mode':8} {'op':9} {'spe':3} | {'mc sleeps':>9} {'peer':>6} | {'mc IPIs':>7} {'peer':>6}")
for (mode, op, spe), by in order:
    if "mc" not in by:
        continue
    mc, peer = by["mc"], by["peer"]
    if "sleeps-per-rt" not in mc[0]:
        continue
    print(f"{mode:8} {op:9} {spe:3} | {med(mc, 'sleeps-per-rt'):9.3f} {med(peer, 'sleeps-per-rt'):6.3f} | "
          f"{med(mc, 'cpu0-ipis-per-rt'):7.3f} {med(peer, 'cpu0-ipis-per-rt'):6.3f}")

plain = [(key, by) for key, by in order if "plain" in by]
if plain:
    print()
    print("the same datagrams in plain UDP (udp-floor --echo, no work above the kernel), paced to the peer's")
    print("round trips per second of the same pair; ratios to the peer's medians above")
    print(f"{'mode':8} {'op':9} {'spe':3} | {'plain proc':>10} {'÷ peer':>6} {'mc ÷ peer':>9} | "
          f"{'plain cpu0':>10} {'÷ peer':>6} {'mc ÷ peer':>9} | {'plain rt/s':>10} | {'plain sleeps':>12}")
    for (mode, op, spe), by in plain:
        peer, pl, mc = by["peer"], by["plain"], by.get("mc")
        pp, p0 = med(peer, "process-us"), med(peer, "cpu0-us")
        lp, l0 = med(pl, "process-us"), med(pl, "cpu0-us")
        mc_ratio = lambda field, of_peer: f"{med(mc, field) / of_peer:9.2f}" if mc else f"{'-':>9}"
        print(f"{mode:8} {op:9} {spe:3} | {lp:10.2f} {lp / pp:6.2f} {mc_ratio('process-us', pp)} | "
              f"{l0:10.2f} {l0 / p0:6.2f} {mc_ratio('cpu0-us', p0)} | {med(pl, 'rt/s'):10.0f} | "
              f"{med(pl, 'sleeps-per-rt'):12.3f}")

servers = [(key, kind, by[kind]) for key, by in order for kind in sorted(by)
           if kind.startswith("mc") and "pausing-epochs" in by[kind][0]]


def pausing_share(run):
    paused, epochs = (int(x) for x in run["pausing-epochs"].split("/"))
    return paused / epochs if epochs else 0.0


if servers:
    print()
    print("each mc-service setting against the peer, medians; pausing = the receive-pause trial's epochs")
    print("that paused over the 6 s, median share (mc-nopause: MC_RX_BATCH_US=0)")
    print(f"{'mode':8} {'op':9} {'spe':3} {'server':10} | {'proc':>6} {'÷ peer':>6} | {'cpu0':>6} {'÷ peer':>6} | "
          f"{'rt/s':>7} {'÷ peer':>6} | {'pausing':>7}")
    for (mode, op, spe), kind, runs in servers:
        peer = rows[(mode, op, spe)]["peer"]
        pausing = statistics.median(pausing_share(r) for r in runs)
        print(f"{mode:8} {op:9} {spe:3} {kind:10} | {med(runs, 'process-us'):6.2f} "
              f"{med(runs, 'process-us') / med(peer, 'process-us'):6.2f} | {med(runs, 'cpu0-us'):6.2f} "
              f"{med(runs, 'cpu0-us') / med(peer, 'cpu0-us'):6.2f} | {med(runs, 'rt/s'):7.0f} "
              f"{med(runs, 'rt/s') / med(peer, 'rt/s'):6.2f} | {pausing:7.0%}")
