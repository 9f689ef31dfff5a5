#!/usr/bin/env python3
"""One reading of a running mc-service's CPU, as JSON: per shard, /proc's utime and
stime of its threads (seconds) and its mc_shard_cpu_seconds_total series; for the
process, /proc's utime + stime and process_cpu_seconds_total."""
import json
import os
import re
import sys
import urllib.request

pid = sys.argv[1]
tick = os.sysconf("SC_CLK_TCK")


def times(path):
    stat = open(path).read()
    fields = stat[stat.rindex(")") + 2:].split()
    return int(fields[11]) / tick, int(fields[12]) / tick


proc = {}
for tid in os.listdir(f"/proc/{pid}/task"):
    name = open(f"/proc/{pid}/task/{tid}/comm").read().strip()
    m = re.match(r"shard-(\d+)-", name)
    if m:
        u, s = times(f"/proc/{pid}/task/{tid}/stat")
        acc = proc.setdefault(m.group(1), [0.0, 0.0])
        acc[0] += u
        acc[1] += s
body = urllib.request.urlopen("http://127.0.0.1:18533/metrics").read().decode()
metrics = {}
process_metric = None
for line in body.splitlines():
    m = re.match(r'mc_shard_cpu_seconds_total\{mode="(\w+)",shard="(\d+)"\} (\S+)', line)
    if m:
        metrics.setdefault(m.group(2), [0.0, 0.0])[0 if m.group(1) == "user" else 1] = float(m.group(3))
    elif line.startswith("process_cpu_seconds_total "):
        process_metric = float(line.split()[1])
u, s = times(f"/proc/{pid}/stat")
print(json.dumps({"proc": proc, "metrics": metrics, "process": [u + s, process_metric]}))
