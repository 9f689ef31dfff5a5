#!/usr/bin/env python3
"""Generates the mc-service Grafana dashboards (dashboards/*.json).

The JSON files are committed; edit this script and re-run it
(`python3 infra/grafana/generate.py`) rather than editing the JSON by hand.
infra/tests/test_dashboards.py fails when the committed JSON differs from the output.
"""

import json
import pathlib

OUT = pathlib.Path(__file__).resolve().parent / "dashboards"
SEL = 'job="meeting-controller",pod=~"$pod"'
RI = "$__rate_interval"


class Layout:
    """Places panels left to right on Grafana's 24-column grid."""

    def __init__(self):
        self.x = 0
        self.y = 0
        self.row_h = 0
        self.next_id = 1
        self.panels = []

    def add(self, panel, w, h):
        if self.x + w > 24:
            self.x, self.y, self.row_h = 0, self.y + self.row_h, 0
        panel["id"] = self.next_id
        panel["gridPos"] = {"x": self.x, "y": self.y, "w": w, "h": h}
        self.next_id += 1
        self.x += w
        self.row_h = max(self.row_h, h)
        self.panels.append(panel)

    def row(self, title):
        self.x, self.y, self.row_h = 0, self.y + self.row_h, 0
        self.add({"type": "row", "title": title, "collapsed": False, "panels": []}, 24, 1)
        self.x, self.y, self.row_h = 0, self.y + 1, 0


def targets(exprs):
    return [
        {"refId": chr(ord("A") + i), "expr": e, "legendFormat": legend,
         "datasource": {"type": "prometheus", "uid": "${datasource}"}}
        for i, (e, legend) in enumerate(exprs)
    ]


def timeseries(title, exprs, unit="short", description="", thresholds=None):
    steps = [{"color": "green", "value": None}]
    for value, color in thresholds or []:
        steps.append({"color": color, "value": value})
    return {
        "type": "timeseries",
        "title": title,
        "description": description,
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "targets": targets(exprs),
        "fieldConfig": {
            "defaults": {
                "unit": unit,
                "thresholds": {"mode": "absolute", "steps": steps},
                "custom": {"thresholdsStyle": {"mode": "line" if thresholds else "off"}},
            },
            "overrides": [],
        },
        "options": {"legend": {"displayMode": "list", "placement": "bottom"},
                    "tooltip": {"mode": "multi"}},
    }


def stat(title, expr, unit="short", description="", thresholds=None):
    steps = [{"color": "green", "value": None}]
    for value, color in thresholds or []:
        steps.append({"color": color, "value": value})
    return {
        "type": "stat",
        "title": title,
        "description": description,
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "targets": targets([(expr, "")]),
        "fieldConfig": {"defaults": {"unit": unit,
                                     "thresholds": {"mode": "absolute", "steps": steps}},
                        "overrides": []},
        "options": {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                    "colorMode": "value", "graphMode": "area"},
    }


def quantiles(metric, by=""):
    grp = f"sum by (le{by}) (rate({metric}_bucket{{{SEL}}}[{RI}]))"
    return [(f"histogram_quantile({q}, {grp})", f"p{int(q * 100)}") for q in (0.5, 0.95, 0.99)]


def dashboard(uid, title, description, layout, pod_var=True):
    templating = [{
        "name": "datasource", "label": "Data source", "type": "datasource",
        "query": "prometheus", "current": {}, "hide": 0,
    }]
    if pod_var:
        templating.append({
            "name": "pod", "label": "Pod", "type": "query",
            "datasource": {"type": "prometheus", "uid": "${datasource}"},
            "query": {"query": 'label_values(mc_build_info{job="meeting-controller"}, pod)',
                      "refId": "pod"},
            "definition": 'label_values(mc_build_info{job="meeting-controller"}, pod)',
            "includeAll": True, "multi": True, "allValue": ".*", "refresh": 2,
            "current": {"text": "All", "value": "$__all"}, "hide": 0, "sort": 1,
        })
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["mc-service", "dark-tower"],
        "timezone": "utc",
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": 39,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": templating},
        "annotations": {"list": []},
        "links": [],
        "panels": layout.panels,
    }


def overview():
    lo = Layout()
    lo.row("Service")
    lo.add(stat("Pods up", 'sum(up{job="meeting-controller"})',
                description="Scraped meeting-controller pods (MCDown fires at 0)."), 4, 4)
    lo.add(stat("Active meetings", f"sum(mc_meetings_active{{{SEL}}})"), 4, 4)
    lo.add(stat("Active connections", f"sum(mc_connections_active{{{SEL}}})"), 4, 4)
    lo.add(stat("Shards", f"sum(mc_shards{{{SEL}}})"), 4, 4)
    lo.add(stat("Registered with GC", f"sum(mc_gc_registered{{{SEL}}})"), 4, 4)
    lo.add(stat("Draining", f"sum(mc_draining{{{SEL}}})", thresholds=[(1, "orange")]), 4, 4)
    lo.row("Load")
    lo.add(timeseries("Active meetings by pod",
                      [(f"sum by (pod) (mc_meetings_active{{{SEL}}})", "{{pod}}")],
                      description="Compare with MC_CAPACITY (MCNearCapacity at 80 %)."), 12, 8)
    lo.add(timeseries("Active connections by pod",
                      [(f"sum by (pod) (mc_connections_active{{{SEL}}})", "{{pod}}")]), 12, 8)
    lo.add(timeseries("Client messages / s by kind",
                      [(f"sum by (kind) (rate(mc_client_messages_total{{{SEL}}}[{RI}]))", "{{kind}}")],
                      unit="reqps"), 12, 8)
    lo.add(timeseries("WebTransport connections / s by outcome",
                      [(f"sum by (status) (rate(mc_webtransport_connections_total{{{SEL}}}[{RI}]))",
                        "{{status}}")], unit="reqps"), 12, 8)
    lo.row("Actors")
    lo.add(timeseries("Mailbox depth by actor type and shard",
                      [(f"max by (pod, actor_type, shard) (mc_actor_mailbox_depth{{{SEL}}})",
                        "{{pod}} {{actor_type}} shard {{shard}}")],
                      description="Runbook: should stay below 50; critical above 500 for 2m.",
                      thresholds=[(50, "orange"), (500, "red")]), 12, 8)
    lo.add(timeseries("Actor panics (per interval)",
                      [(f"sum by (pod, actor_type) (increase(mc_actor_panics_total{{{SEL}}}[{RI}]))",
                        "{{pod}} {{actor_type}}")],
                      description="Any panic is a bug and a rollback criterion.",
                      thresholds=[(1, "red")]), 12, 8)
    lo.add(timeseries("Messages dropped / s by actor type",
                      [(f"sum by (pod, actor_type) (rate(mc_messages_dropped_total{{{SEL}}}[{RI}]))",
                        "{{pod}} {{actor_type}}")], unit="reqps"), 12, 8)
    lo.add(timeseries("Message processing latency",
                      quantiles("mc_message_processing_duration_seconds"), unit="s",
                      description="SLO: p95 < 500 ms.", thresholds=[(0.5, "red")]), 12, 8)
    lo.row("Sessions")
    lo.add(timeseries("Joins / s by status",
                      [(f"sum by (status) (rate(mc_session_joins_total{{{SEL}}}[{RI}]))", "{{status}}")],
                      unit="reqps"), 12, 8)
    lo.add(timeseries("Join latency (CONNECT to JoinResponse)",
                      quantiles("mc_session_join_duration_seconds"), unit="s"), 12, 8)
    lo.add(timeseries("JWT validations / s by result and reason",
                      [("sum by (result, failure_reason) "
                        f"(rate(mc_jwt_validations_total{{{SEL}}}[{RI}]))",
                        "{{result}} {{failure_reason}}")], unit="reqps"), 12, 8)
    lo.add(timeseries("Sessions closed / s by reason",
                      [(f"sum by (reason) (rate(mc_sessions_closed_total{{{SEL}}}[{RI}]))", "{{reason}}")],
                      unit="reqps"), 12, 8)
    lo.add(timeseries("Refusals / s by reason",
                      [(f"sum by (reason) (rate(mc_refusals_total{{{SEL}}}[{RI}]))", "{{reason}}")],
                      unit="reqps"), 12, 8)
    lo.row("QUIC")
    lo.add(timeseries("QUIC handshake latency", quantiles("mc_quic_handshake_duration_seconds"),
                      unit="s"), 12, 8)
    lo.add(timeseries("Retries and cross-shard datagrams / s",
                      [(f"sum by (pod) (rate(mc_quic_retries_total{{{SEL}}}[{RI}]))", "retries {{pod}}"),
                       (f"sum by (pod) (rate(mc_datagrams_forwarded_total{{{SEL}}}[{RI}]))",
                        "forwarded {{pod}}")], unit="pps"), 12, 8)
    lo.row("Data path")
    lo.add(timeseries("Fan-out duration by shard (p99)",
                      [("histogram_quantile(0.99, sum by (le, pod, shard) "
                        f"(rate(mc_fanout_duration_seconds_bucket{{{SEL}}}[{RI}])))",
                        "{{pod}} shard {{shard}}")],
                      unit="s",
                      description="From a meeting handling a message to the last recipient's "
                                  "packet handed to the kernel. A 1,000-participant meeting "
                                  "at 10 messages/s stays under 20 ms on one shard (tuning.md: "
                                  "The shard's data path).",
                      thresholds=[(0.02, "orange"), (0.1, "red")]), 12, 8)
    lo.add(timeseries("Server CPU by pod",
                      [(f"sum by (pod) (rate(process_cpu_seconds_total{{{SEL}}}[{RI}]))", "{{pod}}")],
                      unit="percentunit",
                      description="Cores used (1.0 = one core). Each shard is one thread: "
                                  "compare with mc_shards."), 12, 8)
    lo.add(timeseries("CPU by shard",
                      [(f"sum by (pod, shard) (rate(mc_shard_cpu_seconds_total{{{SEL}}}[{RI}]))",
                        "{{pod}} shard {{shard}}")],
                      unit="percentunit",
                      description="Cores each shard's thread used, user space and kernel "
                                  "(1.0 = the whole CPU a shard is pinned to). A shard near "
                                  "1.0 is saturated even when its pod's total is not; shards "
                                  "far apart mean the load lands unevenly.",
                      thresholds=[(0.7, "orange"), (0.9, "red")]), 12, 8)
    lo.add(timeseries("UDP datagrams per socket call",
                      [(f"sum by (pod) (rate(mc_udp_datagrams_total{{{SEL},direction=\"in\"}}[{RI}])) / "
                        f"sum by (pod) (rate(mc_udp_syscalls_total{{{SEL},op=\"recvmmsg\"}}[{RI}]))",
                        "received {{pod}}"),
                       (f"sum by (pod) (rate(mc_udp_datagrams_total{{{SEL},direction=\"out\"}}[{RI}])) / "
                        f"sum by (pod) (rate(mc_udp_syscalls_total{{{SEL},op=\"sendmmsg\"}}[{RI}]))",
                        "sent {{pod}}")],
                      description="Batching of recvmmsg/sendmmsg across all shards: near 1 "
                                  "when idle, tens under fan-out load."), 12, 8)
    lo.add(timeseries("HTTP/3 refusals / s",
                      [(f"sum by (pod) (rate(mc_h3_protocol_errors_total{{{SEL}}}[{RI}]))",
                        "protocol errors {{pod}}"),
                       (f"sum by (pod) (rate(mc_h3_streams_refused_total{{{SEL}}}[{RI}]))",
                        "streams refused {{pod}}"),
                       (f"sum by (pod) (rate(mc_h3_datagrams_dropped_total{{{SEL}}}[{RI}]))",
                        "datagrams dropped {{pod}}"),
                       (f"sum by (pod) (rate(mc_udp_oversized_datagrams_total{{{SEL}}}[{RI}]))",
                        "oversized UDP datagrams {{pod}}")],
                      unit="reqps",
                      description="Clients breaking HTTP/3 or WebTransport rules below the "
                                  "signaling; a steady rate is a broken or hostile client."),
           12, 8)
    lo.row("Global Controller")
    lo.add(timeseries("GC heartbeats / s by status",
                      [(f"sum by (status) (rate(mc_gc_heartbeat_total{{{SEL}}}[{RI}]))", "{{status}}"),
                       (f"sum by (status) (rate(mc_gc_registrations_total{{{SEL}}}[{RI}]))",
                        "registration {{status}}")], unit="reqps"), 12, 8)
    lo.add(timeseries("GC heartbeat round trip",
                      [(f"histogram_quantile(0.95, sum by (le) "
                        f"(rate(mc_gc_heartbeat_duration_seconds_bucket{{{SEL}}}[{RI}])))", "p95"),
                       (f"min by (pod) (mc_gc_registered{{{SEL}}})", "registered {{pod}}")],
                      unit="s"), 12, 8)
    lo.row("Live migration")
    lo.add(timeseries("Meetings migrated (per interval) by direction and result",
                      [("sum by (direction, result) "
                        f"(increase(mc_meetings_migrated_total{{{SEL}}}[{RI}]))",
                        "{{direction}} {{result}}")],
                      description="out: meetings a draining MC handed over (ok) or kept "
                                  "(refused, failed, no_target); in: imports a target took "
                                  "(ok, repeat) or refused. Runbook: Rolling update without "
                                  "ending meetings."), 12, 8)
    lo.add(timeseries("Hand-over time (freeze to the target's acceptance)",
                      quantiles("mc_meeting_handover_duration_seconds"), unit="s",
                      description="How long a meeting's participants wait during a move; "
                                  "bounded by the export and import timeouts (about 8 s)."),
           12, 8)
    return dashboard("mc-overview", "MC Overview",
                     "Meeting Controller: load, actors, sessions, QUIC, GC integration and "
                     "live migration (runbook: Monitoring and Verification).", lo)


def slos():
    lo = Layout()
    lo.row("Now")
    lo.add(stat("p95 message latency (5m)",
                "max(job:mc_message_processing_duration_seconds:p95_rate5m)", unit="s",
                thresholds=[(0.25, "orange"), (0.5, "red")]), 6, 5)
    lo.add(stat("Drop rate (5m)", "max(job:mc_messages_dropped:ratio_rate5m)", unit="percentunit",
                thresholds=[(0.005, "orange"), (0.01, "red")]), 6, 5)
    lo.add(stat("Latency error budget left (30d)",
                "1 - avg_over_time(job:mc_message_processing_slow:ratio_rate1h[30d]) / 0.05",
                unit="percentunit",
                description="Budget: 5 % of messages may exceed 500 ms (p95 < 500 ms).",
                thresholds=[(0.25, "orange"), (0.5, "green")]), 6, 5)
    lo.add(stat("Drop error budget left (30d)",
                "1 - avg_over_time(job:mc_messages_dropped:ratio_rate1h[30d]) / 0.01",
                unit="percentunit", description="Budget: 1 % of messages may be dropped.",
                thresholds=[(0.25, "orange"), (0.5, "green")]), 6, 5)
    lo.row("Latency SLO: p95 < 500 ms")
    lo.add(timeseries("p95 message processing latency vs 500 ms SLO",
                      [("job:mc_message_processing_duration_seconds:p95_rate5m", "fleet"),
                       ('pod:mc_message_processing_duration_seconds:p95_rate5m{pod=~"$pod"}', "{{pod}}")],
                      unit="s", thresholds=[(0.5, "red")]), 12, 9)
    lo.add(timeseries("Latency error budget burn rate",
                      [("job:mc_message_processing_slow:ratio_rate5m / 0.05", "5m"),
                       ("job:mc_message_processing_slow:ratio_rate1h / 0.05", "1h")],
                      description="1 = spending the budget exactly over the SLO window; "
                                  "14.4 over 1h exhausts 2 % of a 30-day budget.",
                      thresholds=[(1, "orange"), (14.4, "red")]), 12, 9)
    lo.row("Drop SLO: < 1 %")
    lo.add(timeseries("Message drop rate vs 1 % SLO",
                      [("job:mc_messages_dropped:ratio_rate5m", "fleet"),
                       ('pod:mc_messages_dropped:ratio_rate5m{pod=~"$pod"}', "{{pod}}")],
                      unit="percentunit", thresholds=[(0.01, "red")]), 12, 9)
    lo.add(timeseries("Drop error budget burn rate",
                      [("job:mc_messages_dropped:ratio_rate5m / 0.01", "5m"),
                       ("job:mc_messages_dropped:ratio_rate1h / 0.01", "1h")],
                      thresholds=[(1, "orange"), (14.4, "red")]), 12, 9)
    return dashboard("mc-slos", "MC SLOs",
                     "Meeting Controller SLOs: p95 message latency < 500 ms, drop rate < 1 %, "
                     "and their error budgets. Inputs are recording rules in "
                     "infra/docker/prometheus/rules/mc-alerts.yaml.", lo)


def render():
    return {"mc-overview.json": overview(), "mc-slos.json": slos()}


def main():
    OUT.mkdir(exist_ok=True)
    for name, dash in render().items():
        (OUT / name).write_text(json.dumps(dash, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
