"""Medians of run.sh's runs.txt: mc-service's and plain UDP's server CPU per delivered
notification, on loopback and over the veth pair, and their ratio."""
import re
import statistics
import sys

rows = {}
for line in open(sys.argv[1]):
    f = line.split()
    kv = dict(re.findall(r"(\S+)=\s*(\S+)", line))
    rows.setdefault((f[0], kv["rate"]), {}).setdefault(f[1], []).append(kv)


def med(runs, field):
    return statistics.median(float(r[field]) for r in runs)


# The (mode, rate) settings run for both servers, in order, with their runs.
settings = [(mode, rate, by["mc"], by["plain"])
            for (mode, rate), by in sorted(rows.items(), key=lambda kv: (kv[0][0], int(kv[0][1])))
            if by.get("mc") and by.get("plain")]

print("medians over runs; server CPU per delivered notification in µs")
print("(process: the server's /proc/PID/stat, or udp-floor's server thread; cpu0: all of CPU 0)")
print(f"{'mode':8} {'rate':>4} | {'mc proc':>7} {'plain':>6} {'ratio':>5} | "
      f"{'mc cpu0':>7} {'plain':>6} {'ratio':>5} | {'mc softirq':>10} {'plain':>6} | "
      f"{'deliveries/s':>12} | {'fan-out p99 ms client, server':>29} | {'runs':>4}")
for mode, rate, mc, pl in settings:
    mp, lp = med(mc, "process-us"), med(pl, "process-us")
    m0, l0 = med(mc, "cpu0-us"), med(pl, "cpu0-us")
    ms, ls = med(mc, "cpu0-softirq-us"), med(pl, "cpu0-softirq-us")
    p99 = f"{med(mc, 'fanout-p99-ms'):.1f}, {med(mc, 'server-p99-ms'):.1f}"
    print(f"{mode:8} {rate:>4} | {mp:7.2f} {lp:6.2f} {mp / lp:5.2f} | {m0:7.2f} {l0:6.2f} {m0 / l0:5.2f} | "
          f"{ms:10.2f} {ls:6.2f} | {med(mc, 'deliveries/s'):12.0f} | {p99:>29} | {len(mc):>4}")

# Fields that later versions of run.sh added: their tables print only where the runs have them.
ipis = [(mode, rate, mc, pl) for mode, rate, mc, pl in settings if "cpu0-ipis" in mc[0]]
if ipis:
    print()
    print("IPIs (function-call and rescheduling interrupts) received per delivery, medians: CPU 0 (the")
    print("server's), CPU 1 (the clients'); with RPS a datagram steered to the other CPU's idle backlog")
    print("costs one")
    print(f"{'mode':8} {'rate':>4} | {'mc cpu0':>7} {'plain':>6} | {'mc cpu1':>7} {'plain':>6}")
    for mode, rate, mc, pl in ipis:
        print(f"{mode:8} {rate:>4} | {med(mc, 'cpu0-ipis'):7.3f} {med(pl, 'cpu0-ipis'):6.3f} | "
              f"{med(mc, 'cpu1-ipis'):7.3f} {med(pl, 'cpu1-ipis'):6.3f}")

sleeps = [(mode, rate, mc, pl) for mode, rate, mc, pl in settings if "sleeps" in mc[0]]
if sleeps:
    print()
    print("per delivery, medians: the server's sleeps (voluntary context switches; mc-service: all its")
    print("threads, plain: its server thread), and mc-service's datagrams received and recvmmsg calls")
    print("(its counters); pausing = the receive-pause trial's epochs that paused, summed over runs")
    print(f"{'mode':8} {'rate':>4} | {'mc sleeps':>9} {'plain':>6} | {'mc datagrams in':>15} {'recvmmsg':>8} | {'pausing':>9}")
    for mode, rate, mc, pl in sleeps:
        paused = sum(int(r["pausing-epochs"].split("/")[0]) for r in mc)
        epochs = sum(int(r["pausing-epochs"].split("/")[1]) for r in mc)
        print(f"{mode:8} {rate:>4} | {med(mc, 'sleeps'):9.4f} {med(pl, 'sleeps'):6.4f} | "
              f"{med(mc, 'datagrams-in'):15.3f} {med(mc, 'recvmmsg'):8.4f} | {paused:>4}/{epochs:<4}")
