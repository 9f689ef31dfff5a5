"""The receive-pause trial's epochs from mc-service's trace logs (LOG_FILTER=
warn,mc_service::shard::rx_batching=trace in run.sh): writes epochs.tsv (one line per
epoch: run, seconds since its first epoch, pausing and rechecking as 1/0, the epoch's
datagrams, its length, the thread's CPU ns per datagram, datagrams per second) and prints, per run, the medians of the thread CPU per datagram and of the pace
in the epochs that paused and in those that read at once, after the first second
(the handshakes)."""
import glob
import re
import statistics
import sys
from datetime import datetime

here = sys.argv[1]
out = open(f"{here}/epochs.tsv", "w")
out.write("run\tseconds\tpausing\trechecking\tdatagrams\tms\tns_per_datagram\tper_second\n")
print("run | epochs paused / all | thread ns per datagram: paused, at once, ratio | datagrams/s: paused, at once, ratio")
for log in sorted(glob.glob(f"{here}/server-*.log")):
    name = log.rsplit("/", 1)[1]
    rows = []
    t0 = None
    for line in open(log):
        if "receive-pause epoch" not in line:
            continue
        t = datetime.fromisoformat(line.split()[0].replace("Z", "+00:00"))
        t0 = t0 or t
        kv = dict(re.findall(r"(\w+)=(\S+)", line.split("receive-pause epoch", 1)[1]))
        row = ((t - t0).total_seconds(), kv["pausing"] == "true", kv["rechecking"] == "true",
               int(kv["datagrams"]), int(kv["ms"]), int(kv["ns_per_datagram"]), int(kv["per_second"]))
        rows.append(row)
        run = re.search(r"run-(\d+)", name).group(1)
        out.write(f"{run}\t{row[0]:.3f}\t" + "\t".join(str(int(x)) for x in row[1:]) + "\n")
    steady = [r for r in rows if r[0] >= 1.0]
    paused = [r for r in steady if r[1]]
    at_once = [r for r in steady if not r[1]]
    pn, an = (statistics.median(r[5] for r in x) for x in (paused, at_once))
    pp, ap = (statistics.median(r[6] for r in x) for x in (paused, at_once))
    print(f"{name} | {len(paused)} / {len(steady)} | {pn:.0f}, {an:.0f}, {pn / an:.2f} | {pp:.0f}, {ap:.0f}, {pp / ap:.2f}")
