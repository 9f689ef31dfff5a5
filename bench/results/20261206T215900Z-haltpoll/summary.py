#!/usr/bin/env python3
"""Summarise run.sh's sittings: each sitting's echo 10 x 1 and fan-out figures (medians
of its bench/compare.sh runs) by the idle poll budget it ran with, then the medians of
the sittings with each budget. Reads runs.txt beside this script and the summary.json of
each results directory it names; prints Markdown."""
import json
import statistics
from pathlib import Path

here = Path(__file__).resolve().parent
results = here.parent
rows = []
for line in (here / "runs.txt").read_text().splitlines():
    budget, folder = line.split()[:2]
    d = json.loads((results / folder / "summary.json").read_text())
    e = d["pairs"]["echo10x1"]
    mc_rx = [r["mc"]["rx_path"]["datagrams_per_recvmmsg"] for r in e["runs"]]
    f10, f40 = d["fanout"]["10"], d["fanout"]["40"]
    rows.append({
        "budget": int(budget.split("=")[1]),
        "folder": folder,
        "mc": e["mc"]["us_per_op"],
        "peer": e["peer"]["us_per_op"],
        "ratio": e["median_ratio"],
        "floor_over_peer": e["floor"]["floor_over_peer"],
        "mc_rx": statistics.median(mc_rx),
        "f10": f10["us_per_op"],
        "f10_floor": f10["floor_us_per_delivery"],
        "f10_ratio": f10["fanout_over_floor"],
        "f40": f40["us_per_op"],
        "f40_floor": f40["floor_us_per_delivery"],
    })

cols = [
    ("echo 10 x 1: mc-service us", "mc", 2),
    ("peer us", "peer", 2),
    ("ratio", "ratio", 2),
    ("plain UDP / peer", "floor_over_peer", 2),
    ("mc-service datagrams per recvmmsg", "mc_rx", 2),
    ("fan-out 10/s us", "f10", 1),
    ("its floor us", "f10_floor", 2),
    ("fan-out / floor", "f10_ratio", 2),
    ("fan-out 40/s us", "f40", 1),
    ("its floor us", "f40_floor", 2),
]
print("| sitting | guest_halt_poll_ns | " + " | ".join(c[0] for c in cols) + " |")
print("|" + "---|" * (len(cols) + 2))
for r in rows:
    cells = " | ".join(f"{r[k]:.{n}f}" for _, k, n in cols)
    print(f"| `{r['folder']}` | {r['budget']} | {cells} |")
for budget in sorted({r["budget"] for r in rows}):
    sel = [r for r in rows if r["budget"] == budget]
    cells = " | ".join(f"**{statistics.median(r[k] for r in sel):.{n}f}**" for _, k, n in cols)
    print(f"| median of {len(sel)} | {budget} | {cells} |")
