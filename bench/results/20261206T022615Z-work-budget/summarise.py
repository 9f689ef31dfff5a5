#!/usr/bin/env python3
"""runs.txt (from run.sh) -> summary.md: per sitting, the plain server's CPU per round
trip against its busy work per datagram, and where the 0.6 target and the two real
servers fall on that curve."""
import statistics
import sys
from collections import defaultdict
from pathlib import Path

here = Path(__file__).resolve().parent
rows = defaultdict(dict)
for line in (here / "runs.txt").read_text().splitlines():
    sitting, server, work, us, user, rate, steal = line.split()
    key = (server, int(work) if work != "-" else None)
    rows[int(sitting)][key] = dict(
        us=float(us), user=None if user == "-" else float(user), rate=int(rate), steal=float(steal)
    )


def work_at(curve, us):
    """The work (ns) at which the plain server's CPU per round trip is `us`, read off the
    curve by straight lines between the measured points (None outside it)."""
    for (w0, u0), (w1, u1) in zip(curve, curve[1:]):
        lo, hi = min(u0, u1), max(u0, u1)
        if lo <= us <= hi and u1 != u0:
            return w0 + (us - u0) * (w1 - w0) / (u1 - u0)
    return None


def fmt(x, spec="%.0f"):
    return "n/a" if x is None else spec % x


def budget(curve, us):
    """The work a server may do per datagram and still cost `us`: none when `us` is
    below the plain server's own cost with no work at all."""
    if us < curve[0][1]:
        return "none (below W = 0)"
    return fmt(work_at(curve, us))


out = []
out.append("# The work above the kernel that echo 10 × 1 leaves room for\n")
out.append(
    "From `run.sh` here (`runs.txt`, one line per run). Each sitting: echo 10 × 1 against "
    "mc-service and against the tokio/quinn peer, then `udp-floor --echo` paced to the "
    "peer's round trips per second with the plain server spending W ns of busy work per "
    "datagram before it answers. µs = server CPU (utime + stime) per round trip.\n"
)
works = sorted({w for s in rows.values() for (srv, w) in s if srv == "udp-floor"})
head = "| sitting | peer µs (round trips/s) | 0.6 × peer | mc-service µs (user) | " + " | ".join(
    "plain, W = %d" % w for w in works
) + " | plain W = 0 ÷ peer | mc-service ÷ peer | W where plain = 0.6 × peer | W where plain = mc-service | slope, µs of CPU per µs of work |"
out.append(head)
out.append("|" + "---|" * (head.count("|") - 1))
per = defaultdict(list)
for sitting in sorted(rows):
    s = rows[sitting]
    peer, mc = s[("peer", None)], s[("mc-service", None)]
    curve = [(w, s[("udp-floor", w)]["us"]) for w in works if ("udp-floor", w) in s]
    target = 0.6 * peer["us"]
    w_target = budget(curve, target)
    w_mc = work_at(curve, mc["us"])
    (w0, u0), (w1, u1) = curve[0], curve[-1]
    slope = (u1 - u0) / ((w1 - w0) / 1000)
    per["peer"].append(peer["us"])
    per["mc"].append(mc["us"])
    per["mc_user"].append(mc["user"])
    per["slope"].append(slope)
    for w, u in curve:
        per["plain%d" % w].append(u)
    per["floor_ratio"].append(curve[0][1] / peer["us"])
    per["mc_ratio"].append(mc["us"] / peer["us"])
    if w_mc is not None:
        per["w_mc"].append(w_mc)
    out.append(
        "| %d | %.2f (%d) | %.2f | %.2f (%.2f) | %s | %.2f | %.2f | %s | %s | %.2f |"
        % (
            sitting, peer["us"], peer["rate"], target, mc["us"], mc["user"],
            " | ".join("%.2f" % u for _, u in curve), curve[0][1] / peer["us"],
            mc["us"] / peer["us"], w_target, fmt(w_mc), slope,
        )
    )
med = lambda k: statistics.median(per[k]) if per[k] else None
out.append(
    "| median | %.2f | %.2f | %.2f (%.2f) | %s | %.2f | %.2f | | %s | %.2f |"
    % (
        med("peer"), 0.6 * med("peer"), med("mc"), med("mc_user"),
        " | ".join("%.2f" % med("plain%d" % w) for w in works),
        med("floor_ratio"), med("mc_ratio"), fmt(med("w_mc")), med("slope"),
    )
)
out.append("")
out.append(
    "W where plain = 0.6 × peer: the busy work per datagram a server could do and still "
    "meet the 0.6 target, read off the plain curve; where 0.6 × peer is below the plain "
    "server's cost with no work at all, there is none. W where plain = mc-service: the "
    "work that makes the plain server cost what mc-service does. Slope: the plain "
    "server's CPU per round trip from W = 0 to the largest W, per µs of work.\n"
)
out.append(
    "Steal (% of the server CPU's time) per run is the last field of each line in "
    "`runs.txt`; the plain clients' round trips per second are its sixth field."
)
(here / "summary.md").write_text("\n".join(out) + "\n")
print("\n".join(out))
