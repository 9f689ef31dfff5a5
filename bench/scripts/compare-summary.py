#!/usr/bin/env python3
"""Summary of a bench/compare.sh run: reads the load generator JSONs, RSS samples and perf
reports in the results folder <run>/ and writes <run>/summary.md and summary.json (and prints
the markdown).

    python3 bench/scripts/compare-summary.py bench/results/<stamp>-<commit>-compare RUNS
"""
import csv
import json
import os
import statistics
import sys

OUT = sys.argv[1]
RUNS = int(sys.argv[2]) if len(sys.argv) > 2 else 3
NAMES = {"mc": "mc-service", "peer": "wt-echo-server (tokio/quinn)"}
# The share of its pace echo 10 × 1's plain UDP floor must reach to count.
PACE_REACHED = 0.9
PAIR_OPS = [
    ("setup", "session setup (connect + CONNECT + 32 B echo + close)", "setup"),
    ("echo100x8", "echo 100 sessions × 8 in flight × 64 B", "rtt"),
    ("echo10x1", "echo 10 sessions × 1 in flight × 64 B", "rtt"),
]


def load(name):
    try:
        with open(os.path.join(OUT, name + ".json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def pid_cpu(window):
    """The server CPU read from /proc/<pid>/stat (the source every server has)."""
    for s in (window or {}).get("server", []):
        if s["source"].startswith("pid "):
            return s
    return None


def errors(r):
    f = r["figures"]
    return sum(f["errors"].values()) + f["counters"].get("sessions_failed", 0) + (
        0 if r["passed"] else 1
    )


def series_sum(counters, name, **labels):
    """Sum of the series of counter `name` whose labels include `labels` (all shards)."""
    total = None
    for key, v in counters.items():
        n, _, rest = key.partition("{")
        if n != name:
            continue
        have = dict(
            part.split("=", 1) for part in rest.rstrip("}").split(",") if "=" in part
        )
        if all(have.get(k) == f'"{v2}"' for k, v2 in labels.items()):
            total = (total or 0) + v
    return total


def rx_path(window):
    """mc-service's own receive path over the window: datagrams per recvmmsg and per
    sendmmsg, and the share of its receive-pause trial's epochs that paused."""
    c = (window or {}).get("server_counters") or {}
    if not c:
        return None
    div = lambda a, b: a / b if a is not None and b else None
    pausing = series_sum(c, "mc_rx_batch_epochs_total", way="pausing")
    at_once = series_sum(c, "mc_rx_batch_epochs_total", way="at_once")
    epochs = None if pausing is None or at_once is None else pausing + at_once
    return {
        "datagrams_per_recvmmsg": div(
            series_sum(c, "mc_udp_datagrams_total", direction="in"),
            series_sum(c, "mc_udp_syscalls_total", op="recvmmsg"),
        ),
        "datagrams_per_sendmmsg": div(
            series_sum(c, "mc_udp_datagrams_total", direction="out"),
            series_sum(c, "mc_udp_syscalls_total", op="sendmmsg"),
        ),
        "pause_epochs": epochs,
        "pausing_pct": div(100 * pausing, epochs) if epochs is not None else None,
    }


def run_figures(r, lat):
    """The figures of one load generator run."""
    w = r.get("window") or {}
    cpu = pid_cpu(w)
    gen = w.get("generator") or {}
    l = r["figures"]["latencies"].get(lat, {})
    hist = {
        k: (v["p99_s"] * 1e3 if v else None)
        for k, v in (w.get("server_histograms") or {}).items()
    }
    udp = w.get("udp") or {}
    secs = w.get("duration_s") or 0
    pct = lambda x: 100 * x / secs if x is not None and secs else None
    return {
        "generator_wait_pct": pct(gen.get("runq_wait_s")),
        "server_wait_pct": pct(cpu.get("runq_wait_s") if cpu else None),
        "server_steal_pct": cpu.get("steal_pct") if cpu else None,
        "generator_contended": gen.get("contended"),
        "us_per_op": cpu["us_per_op"] if cpu else None,
        # utime's share: what the server's own code (with quinn-proto and crypto)
        # costs, apart from the kernel's network path.
        "user_us_per_op": cpu.get("user_us_per_op") if cpu else None,
        "server_cores": cpu["cores"] if cpu else None,
        "ops": w.get("ops"),
        "ops_per_s": w.get("ops_per_s"),
        "p50_ms": l.get("p50_ms"),
        "p99_ms": l.get("p99_ms"),
        "errors": errors(r),
        "failures": r["failures"],
        "generator_cores": gen.get("cores"),
        "generator_saturated": gen.get("saturated"),
        "server_hist_p99_ms": hist,
        "datagrams_to_server_per_op": udp.get("to_server_per_op"),
        "datagrams_from_server_per_op": udp.get("from_server_per_op"),
        "rx_path": rx_path(w),
    }


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fmt(x, nd=1):
    return "n/a" if x is None else f"{x:,.{nd}f}"


summary = {"folder": os.path.basename(OUT), "runs": RUNS, "pairs": {}, "fanout": {}, "memory": {}}
md = []
try:
    md.append(open(os.path.join(OUT, "machine" + ".md")).read().rstrip())
except OSError:
    pass
md.append("")
md.append(
    "Server CPU is utime + stime of the server process over the load generator's measured "
    "phase (after the warm-up), divided by the operations completed in it. Ratio = "
    "mc-service ÷ peer per run (below 1: mc-service uses less CPU per operation). "
    "Latencies are the client's, over the measured phase."
)

rows = []
for op, title, lat in PAIR_OPS:
    runs = []
    for i in range(1, RUNS + 1):
        a, b = load(f"{op}-mc-{i}"), load(f"{op}-peer-{i}")
        if not a or not b:
            continue
        fa, fb = run_figures(a, lat), run_figures(b, lat)
        ratio = (
            fa["us_per_op"] / fb["us_per_op"]
            if fa["us_per_op"] and fb["us_per_op"]
            else None
        )
        runs.append({"run": i, "mc": fa, "peer": fb, "ratio": ratio})
    if not runs:
        continue
    agg = {
        "title": title,
        "runs": runs,
        "median_ratio": med([r["ratio"] for r in runs]),
    }
    for k in ("mc", "peer"):
        agg[k] = {
            m: med([r[k][m] for r in runs])
            for m in (
                "us_per_op",
                "ops_per_s",
                "p50_ms",
                "p99_ms",
                "generator_cores",
                "generator_wait_pct",
                "server_wait_pct",
                "server_steal_pct",
                "datagrams_to_server_per_op",
                "datagrams_from_server_per_op",
            )
        }
        agg[k]["errors"] = sum(r[k]["errors"] for r in runs)
        agg[k]["generator_saturated_runs"] = sum(1 for r in runs if r[k]["generator_saturated"])
    summary["pairs"][op] = agg
    rows.append((op, agg))

if rows:
    md += [
        "",
        "## CPU per operation, side by side (medians of the runs)",
        "",
        "| operation | mc-service µs/op | peer µs/op | ratio per run | median ratio | ops/s mc / peer | p50 ms mc / peer | p99 ms mc / peer | errors mc / peer | generator cores mc / peer | % of the time waiting for a CPU: generator, server (mc / peer) | % of the server's CPU taken by the host (steal) mc / peer | UDP datagrams per op to the server, from it: mc / peer |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for op, a in rows:
        m, p = a["mc"], a["peer"]
        per_run = ", ".join(fmt(r["ratio"], 2) for r in a["runs"])
        md.append(
            f"| {a['title']} | {fmt(m['us_per_op'], 2)} | {fmt(p['us_per_op'], 2)} | {per_run} | "
            f"**{fmt(a['median_ratio'], 2)}** | {fmt(m['ops_per_s'], 0)} / {fmt(p['ops_per_s'], 0)} | "
            f"{fmt(m['p50_ms'], 3)} / {fmt(p['p50_ms'], 3)} | {fmt(m['p99_ms'], 3)} / {fmt(p['p99_ms'], 3)} | "
            f"{m['errors']} / {p['errors']} | {fmt(m['generator_cores'], 2)} / {fmt(p['generator_cores'], 2)} | "
            f"{fmt(m['generator_wait_pct'], 0)}, {fmt(m['server_wait_pct'], 0)} / "
            f"{fmt(p['generator_wait_pct'], 0)}, {fmt(p['server_wait_pct'], 0)} | "
            f"{fmt(m['server_steal_pct'], 1)} / {fmt(p['server_steal_pct'], 1)} | "
            f"{fmt(m['datagrams_to_server_per_op'], 3)}, {fmt(m['datagrams_from_server_per_op'], 3)} / "
            f"{fmt(p['datagrams_to_server_per_op'], 3)}, {fmt(p['datagrams_from_server_per_op'], 3)} |"
        )
    echo = summary["pairs"].get("echo10x1")
    floors = [load(f"echo-floor-{r['run']}") for r in echo["runs"]] if echo else []
    # The same floor through io_uring (older sittings have none).
    uring_floors = [load(f"echo-floor-uring-{r['run']}") for r in echo["runs"]] if echo else []
    if any(floors):
        md += [
            "",
            "### Echo 10 × 1 beside the same datagrams in plain UDP (`udp-floor --echo`, after each pair)",
            "",
            "| run | peer round trips/s | plain UDP round trips/s (paced to the peer's) | server µs per round trip: mc-service, peer, plain UDP | plain UDP ÷ peer | mc-service ÷ peer | above plain UDP: mc-service ÷ peer | datagrams per recvmmsg, plain UDP | % steal, plain UDP | plain UDP through io_uring: µs per round trip, ÷ peer, ÷ plain UDP |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        rows_floor = []
        for r, f, g in zip(echo["runs"], floors, uring_floors or [None] * len(floors)):
            if not f:
                continue
            m, p, u = r["mc"]["us_per_op"], r["peer"]["us_per_op"], f.get("us_per_delivery")
            v = g.get("us_per_delivery") if g else None
            # A run through io_uring that fell short of the pace measured another load.
            if g and g.get("window_s") and r["peer"]["ops_per_s"]:
                if g["deliveries"] / g["window_s"] < PACE_REACHED * r["peer"]["ops_per_s"]:
                    v = None
            x = {
                "run": r["run"],
                "floor_us_per_rt": u,
                "floor_rt_per_s": f["deliveries"] / f["window_s"] if f.get("window_s") else None,
                "floor_over_peer": u / p if u is not None and p else None,
                "mc_over_peer": r["ratio"],
                "above_floor_mc_over_peer": (m - u) / (p - u)
                if None not in (m, p, u) and p > u
                else None,
                "report": f,
                "uring_floor_us_per_rt": v,
                "uring_floor_over_peer": v / p if v is not None and p else None,
                "uring_floor_over_floor": v / u if v is not None and u else None,
                "uring_report": g,
            }
            # Plain clients that fell well short of the pace measured another load (the
            # host busy with something else): shown, marked, and left out of the medians.
            pace = r["peer"]["ops_per_s"]
            x["pace_reached"] = bool(
                pace and x["floor_rt_per_s"] and x["floor_rt_per_s"] >= PACE_REACHED * pace
            )
            rows_floor.append(x)
            mark = "" if x["pace_reached"] else " (pace not reached)"
            md.append(
                f"| {r['run']} | {fmt(r['peer']['ops_per_s'], 0)} | {fmt(x['floor_rt_per_s'], 0)}{mark} | "
                f"{fmt(m, 2)}, {fmt(p, 2)}, {fmt(u, 2)} | {fmt(x['floor_over_peer'], 2)} | "
                f"{fmt(x['mc_over_peer'], 2)} | {fmt(x['above_floor_mc_over_peer'], 2)} | "
                f"{fmt(f.get('datagrams_per_recvmmsg'), 2)} | {fmt(f.get('server_steal_pct'), 1)} | "
                f"{fmt(v, 2)}, {fmt(x['uring_floor_over_peer'], 2)}, {fmt(x['uring_floor_over_floor'], 2)} |"
            )
        agg = {
            k: med([x[k] for x in rows_floor if x["pace_reached"]])
            for k in (
                "floor_us_per_rt",
                "floor_over_peer",
                "mc_over_peer",
                "above_floor_mc_over_peer",
                "uring_floor_us_per_rt",
                "uring_floor_over_peer",
                "uring_floor_over_floor",
            )
        }
        agg["runs"] = rows_floor
        echo["floor"] = agg
        md += [
            f"| median | | | {fmt(agg['floor_us_per_rt'], 2)} (plain UDP) | **{fmt(agg['floor_over_peer'], 2)}** | "
            f"**{fmt(agg['mc_over_peer'], 2)}** | **{fmt(agg['above_floor_mc_over_peer'], 2)}** | | | "
            f"{fmt(agg['uring_floor_us_per_rt'], 2)}, **{fmt(agg['uring_floor_over_peer'], 2)}**, "
            f"**{fmt(agg['uring_floor_over_floor'], 2)}** |",
            "",
            "`udp-floor --echo` (bench/src/bin/udp-floor.rs): ten client sockets, each with one "
            "100-byte datagram in flight, paced together to the round trips per second the peer "
            "reached in the same run, and a server thread that only answers each datagram as it "
            "arrives (`recvmmsg`, `sendmmsg`) — no QUIC, TLS or HTTP/3. Its CPU per round trip "
            "is what the kernel alone takes at that pace, waking as often as the peer did; "
            "plain UDP ÷ peer is the lowest ratio any server could reach in that run, and the "
            "last ratio compares what the two servers spend above it. A run whose plain clients "
            f"reached less than {PACE_REACHED:.0%} of the pace is marked and left out of the "
            "medians: the host was busy, and the floor measured a slower load. The last column "
            f"(n/a where its clients too fell below {PACE_REACHED:.0%} of the pace) "
            "is the same plain server waiting, receiving and sending through one io_uring "
            "(`udp-floor --echo --io-uring`: a multishot `recvmsg`, each reply a `sendmsg` "
            "entry submitted with the next wait, one `io_uring_enter` per wake-up): the "
            "kernel's part with the fewest system calls.",
        ]
    rx_rows = [(op, a) for op, a in rows if any(r["mc"]["rx_path"] for r in a["runs"])]
    if rx_rows:
        md += [
            "",
            "mc-service's receive path per run, from its own counters over the window "
            "(published about once a second, so ±1 s at either end): datagrams per "
            "`recvmmsg` and per `sendmmsg`, and the share of the receive-pause trial's "
            "epochs that paused (`mc_rx_batch_epochs_total`; see tuning.md, `MC_RX_BATCH_US`).",
            "",
            "| operation | run: datagrams per recvmmsg, per sendmmsg, % of epochs pausing (epochs), µs/op, ops/s |",
            "|---|---|",
        ]
        for op, a in rx_rows:
            cells = []
            for r in a["runs"]:
                x = r["mc"]["rx_path"] or {}
                cells.append(
                    f"{r['run']}: {fmt(x.get('datagrams_per_recvmmsg'), 1)}, "
                    f"{fmt(x.get('datagrams_per_sendmmsg'), 1)}, {fmt(x.get('pausing_pct'), 0)} % "
                    f"({fmt(x.get('pause_epochs'), 0)}), {fmt(r['mc']['us_per_op'], 2)}, "
                    f"{fmt(r['mc']['ops_per_s'], 0)}"
                )
            md.append(f"| {a['title']} | {'; '.join(cells)} |")
    sat = [
        f"{op} ({k}: {a[k]['generator_saturated_runs']} of {len(a['runs'])} runs)"
        for op, a in rows
        for k in ("mc", "peer")
        if a[k]["generator_saturated_runs"]
    ]
    busy = [
        f"{op} ({k}: {sum(1 for r in a['runs'] if r[k]['generator_contended'])} of {len(a['runs'])} runs)"
        for op, a in rows
        for k in ("mc", "peer")
        if any(r[k]["generator_contended"] for r in a["runs"])
    ]
    if busy:
        md += [
            "",
            "Other processes took the generator's CPU (it waited ≥ 10 % of the window in the "
            "run queue) in: " + ", ".join(busy) + ". Rates and latencies there describe a "
            "contended machine; CPU per operation is the server's own time and compares.",
        ]
    if sat:
        md += [
            "",
            "Generator near saturation (≥ 90 % of its CPU) in: "
            + ", ".join(sat)
            + ". There the client, not the server, bounds the throughput; CPU per "
            "operation stays comparable, throughput does not measure the server's ceiling.",
        ]

fan = {}
# udp-floor's report for each fan-out run (same rate and run number), or None.
floor = {}
for name in sorted(os.listdir(OUT)):
    if name.startswith("fanout") and name.endswith(".json") and "-mc-" in name:
        rate = name[len("fanout") : name.index("-mc-")]
        run = name[name.index("-mc-") + 4 : -5]
        r = load(name[:-5])
        if r:
            fan.setdefault(rate, []).append(run_figures(r, "fanout"))
            floor.setdefault(rate, []).append(load(f"floor{rate}-{run}"))
if fan:
    md += [
        "",
        "## Fan-out (mc-service only: one meeting, mute toggles reaching every participant)",
        "",
        "| rate msg/s | server µs per delivered notification (runs) | median | of it in user space: median (runs) | deliveries/s | client fan-out p50 / p99 ms | server mc_fanout_duration_seconds p99 ms: median (runs) | errors | generator cores | % waiting for a CPU: generator, server | % of the server's CPU taken by the host (steal), runs | UDP datagrams per delivery from the server, to it |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for rate in sorted(fan, key=float):
        runs = fan[rate]
        hist = med([r["server_hist_p99_ms"].get("mc_fanout_duration_seconds") for r in runs])
        agg = {
            "runs": runs,
            "us_per_op": med([r["us_per_op"] for r in runs]),
            "user_us_per_op": med([r["user_us_per_op"] for r in runs]),
            "ops_per_s": med([r["ops_per_s"] for r in runs]),
            "p50_ms": med([r["p50_ms"] for r in runs]),
            "p99_ms": med([r["p99_ms"] for r in runs]),
            "server_fanout_p99_ms": hist,
            "errors": sum(r["errors"] for r in runs),
            "datagrams_from_server_per_op": med([r["datagrams_from_server_per_op"] for r in runs]),
            "datagrams_to_server_per_op": med([r["datagrams_to_server_per_op"] for r in runs]),
        }
        summary["fanout"][rate] = agg
        md.append(
            f"| {rate} | {', '.join(fmt(r['us_per_op'], 1) for r in runs)} | **{fmt(agg['us_per_op'], 1)}** | "
            f"{fmt(agg['user_us_per_op'], 1)} ({', '.join(fmt(r['user_us_per_op'], 1) for r in runs)}) | "
            f"{fmt(agg['ops_per_s'], 0)} | {fmt(agg['p50_ms'], 2)} / {fmt(agg['p99_ms'], 2)} | "
            f"{fmt(hist, 1)} ({', '.join(fmt(r['server_hist_p99_ms'].get('mc_fanout_duration_seconds'), 1) for r in runs)}) | "
            f"{agg['errors']} | {fmt(med([r['generator_cores'] for r in runs]), 2)} | "
            f"{fmt(med([r['generator_wait_pct'] for r in runs]), 0)}, {fmt(med([r['server_wait_pct'] for r in runs]), 0)} | "
            f"{', '.join(fmt(r['server_steal_pct'], 1) for r in runs)} | "
            f"{fmt(agg['datagrams_from_server_per_op'], 2)}, {fmt(agg['datagrams_to_server_per_op'], 2)} |"
        )
    fan_rx = [
        f"{rate}/s run {i}: {fmt(x.get('datagrams_per_recvmmsg'), 1)}, {fmt(x.get('datagrams_per_sendmmsg'), 1)}"
        for rate in sorted(fan, key=float)
        for i, r in enumerate(fan[rate], 1)
        for x in [r["rx_path"]]
        if x
    ]
    if fan_rx:
        md += [
            "",
            "Datagrams per `recvmmsg` and per `sendmmsg` (mc-service's counters over the window): "
            + "; ".join(fan_rx)
            + ".",
        ]
    if any(f for rate in floor for f in floor[rate]):
        md += [
            "",
            "### The same datagrams in plain UDP (`udp-floor`, after each fan-out run)",
            "",
            "| rate msg/s | server µs per delivery, plain UDP (runs) | median | fan-out ÷ plain UDP (runs) | median | answers per delivery | datagrams per recvmmsg, per sendmmsg | late fan-outs | % steal, runs |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for rate in sorted(fan, key=float):
            fl = floor.get(rate, [])
            us = [f and f.get("us_per_delivery") for f in fl]
            ratios = [
                r["us_per_op"] / u if r.get("us_per_op") is not None and u else None
                for r, u in zip(fan[rate], us)
            ]
            agg = summary["fanout"][rate]
            agg["floor_us_per_delivery"] = med(us)
            agg["fanout_over_floor"] = med(ratios)
            agg["floor_runs"] = fl
            ok = [f for f in fl if f]
            md.append(
                f"| {rate} | {', '.join(fmt(u, 2) for u in us)} | **{fmt(med(us), 2)}** | "
                f"{', '.join(fmt(x, 2) for x in ratios)} | **{fmt(med(ratios), 2)}** | "
                f"{fmt(med([f['datagrams_in_per_delivery'] for f in ok]), 2)} | "
                f"{fmt(med([f['datagrams_per_recvmmsg'] for f in ok]), 1)}, "
                f"{fmt(med([f['datagrams_per_sendmmsg'] for f in ok]), 1)} | "
                f"{sum(f['late_fanouts'] for f in ok)} | "
                f"{', '.join(fmt(f and f.get('server_steal_pct'), 1) for f in fl)} |"
            )
        md += [
            "",
            "`udp-floor` (bench/src/bin/udp-floor.rs) sends the fan-out's datagrams with no QUIC, "
            "no crypto and no meeting, pinned as the run before it: one 100-byte datagram to each "
            "client per mute (`sendmmsg`), each client answering with 40 bytes 25 ms later (as a "
            "QUIC client acknowledges a lone packet), read with `recvmmsg` after 500 µs pauses. Its "
            "CPU per delivery is what the kernel's UDP path takes on this host at this moment (on "
            "loopback including the clients' receive); the fan-out ÷ plain UDP is what "
            "mc-service costs above that floor.",
        ]
    md += [
        "",
        "A run holds rate × window fan-outs (100 at 10/s over 10 s), so the server's p99 is "
        "close to the slowest of them. Steal time is time the host (a hypervisor) did not run the "
        "server's CPU although it had work; a stop of a few milliseconds inside a fan-out "
        "lengthens that fan-out by as much.",
    ]


def memory(kind):
    path = os.path.join(OUT, f"memory-{kind}.rss.csv")
    phases_path = os.path.join(OUT, f"memory-{kind}.phases")
    if not os.path.exists(path) or not os.path.exists(phases_path):
        return None
    with open(path) as f:
        samples = [
            (int(r["t_ms"]), int(r["rss_kib"]))
            for r in csv.DictReader(f)
            if r["rss_kib"] and r["rss_kib"].isdigit()
        ]
    phases = dict(line.split() for line in open(phases_path) if line.strip())
    idle_end, hold_start, hold_end = (int(phases.get(k, 0)) for k in ("idle_end", "hold_start", "hold_end"))
    idle = [v for t, v in samples if t <= idle_end]
    loaded = [v for t, v in samples if idle_end < t <= hold_end]
    steady = [v for t, v in samples if hold_start <= t <= hold_end]
    r = load(f"memory-{kind}")
    sessions = r["figures"]["counters"].get("sessions_ok", 0) if r else 0
    if not idle or not loaded or not steady or sessions == 0:
        return {"sessions": sessions, "error": "missing samples or no session"}
    idle_kib = idle[-1]
    peak, steady_med = max(loaded), statistics.median(steady)
    return {
        "sessions": sessions,
        "errors": errors(r) if r else None,
        "idle_rss_kib": idle_kib,
        "peak_rss_kib": peak,
        "steady_median_rss_kib": steady_med,
        "peak_kib_per_session": (peak - idle_kib) / sessions,
        "steady_kib_per_session": (steady_med - idle_kib) / sessions,
        "setup_s": (hold_start - idle_end) / 1000,
        "steady_s": (hold_end - hold_start) / 1000,
        "samples": len(samples),
    }


mem = {k: memory(k) for k in ("mc", "peer")}
if any(mem.values()):
    md += [
        "",
        "## Memory: sessions held open, each with one bidi stream that echoed 32 B",
        "",
        "RSS (VmRSS) every 200 ms; per session = (RSS − idle RSS before the run) ÷ sessions.",
        "",
        "| server | sessions | idle RSS KiB | peak RSS KiB | steady median RSS KiB | KiB/session at peak | KiB/session steady | errors |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for k, m in mem.items():
        summary["memory"][k] = m
        if not m:
            continue
        if "error" in m:
            md.append(f"| {NAMES[k]} | {m['sessions']} | {m['error']} | | | | | |")
            continue
        md.append(
            f"| {NAMES[k]} | {m['sessions']} | {m['idle_rss_kib']:,} | {m['peak_rss_kib']:,} | "
            f"{m['steady_median_rss_kib']:,.0f} | {m['peak_kib_per_session']:.1f} | "
            f"**{m['steady_kib_per_session']:.1f}** | {m['errors']} |"
        )

failed = []
for n in sorted(os.listdir(OUT)):
    if n.endswith(".txt") and not n.startswith(("perf-", "commands")):
        lines = open(os.path.join(OUT, n)).read().strip().splitlines()
        if lines and lines[-1].startswith("exit ") and lines[-1] != "exit 0":
            failed.append(f"{n[:-4]} ({lines[-1]})")
summary["failed_runs"] = failed
if failed:
    md += [
        "",
        "**Failed load generator runs** (see their .txt/.err): " + ", ".join(failed),
    ]

perf = [n for n in sorted(os.listdir(OUT)) if n.startswith("perf-") and n.endswith(".txt")]
if perf:
    md += ["", "## Profiles", ""]
    md += [
        f"- `{n}`: {'the peer' if n.endswith('-peer.txt') else 'mc-service'}: shares by "
        "binary (kernel, server, libc), `perf report --no-children` top 30 (self time)"
        + ("; its time by whose code ran (`bench/scripts/perf-crates.py`)"
           if "by whose code ran" in open(os.path.join(OUT, n)).read() else "")
        + ("; where it waits and is woken (`bench/scripts/perf-callers.py`)"
           if "perf-callers.py" in open(os.path.join(OUT, n)).read() else "")
        + ("; the shard's time by step of its loop (`bench/scripts/perf-phases.py`)"
           if "by step of the loop" in open(os.path.join(OUT, n)).read() else "")
        for n in perf
    ]

md += [
    "",
    "## Files",
    "",
    "- `commands.txt`: every command, in order (servers, load generator, perf).",
    "- `<op>-<mc|peer>-<run>.json` / `.txt`: the load generator's report of each run "
    "(`window` holds operations, generator and server CPU).",
    "- `memory-<server>.rss.csv` and `.phases`: RSS samples and phase boundaries (ms since the epoch).",
    "- `floor<rate>-<run>.json` / `.txt`, `echo-floor-<run>.json` / `.txt` and "
    "`echo-floor-uring-<run>.json` / `.txt`: `udp-floor`'s report of the plain UDP run after "
    "each fan-out run and after each echo 10 × 1 pair (the last through io_uring).",
]
text = "\n".join(md) + "\n"
with open(os.path.join(OUT, "summary" + ".md"), "w") as f:
    f.write(text)
with open(os.path.join(OUT, "summary.json"), "w") as f:
    json.dump(summary, f, indent=2)
    f.write("\n")
print(text)
