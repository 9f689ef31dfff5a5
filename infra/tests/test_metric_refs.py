"""Every metric referenced by PromQL in the rules and dashboards is exported by the real
binary: scraped from `mc-service --dev` on loopback."""

import re

from conftest import REPO
from exprs import dashboard_exprs, recorded_names, rule_exprs
from promql import base_name, exported_names, metric_names

# Produced by Prometheus itself, not by mc-service.
EXTERNAL = {"up"}

# Label-vector families that mc-service registers but that have no series until the
# first event creates a label child (a token validation, a close, a refusal), so a fresh
# dev process cannot show them. Each must still be registered in src/metrics.rs; once
# the binary pre-creates their children they are checked against the scrape like every
# other name.
CREATED_ON_FIRST_EVENT = {
    "mc_jwt_validations_total",
    "mc_sessions_closed_total",
    "mc_refusals_total",
}


def referenced():
    refs = {}
    for where, expr in rule_exprs() + dashboard_exprs():
        for name in metric_names(expr):
            refs.setdefault(name, []).append(where)
    return refs


def test_expressions_were_found():
    refs = referenced()
    assert len(rule_exprs()) >= 13 and len(dashboard_exprs()) >= 20
    assert "mc_message_processing_duration_seconds_bucket" in refs


def test_recording_rules_referenced_are_defined():
    recorded = recorded_names()
    missing = {n: w for n, w in referenced().items() if ":" in n and n not in recorded}
    assert not missing, f"recording rules used but not defined: {missing}"


def test_every_referenced_metric_is_exported(scrape):
    exported = exported_names(scrape)
    registered = set(re.findall(r'"(mc_[a-z0-9_]+)"', (REPO / "src" / "metrics.rs").read_text()))
    problems = []
    for name, where in sorted(referenced().items()):
        if ":" in name or name in EXTERNAL:
            continue
        if name in exported or base_name(name) in exported:
            continue
        fam = base_name(name)
        if fam in CREATED_ON_FIRST_EVENT and fam in registered:
            continue
        problems.append(f"{name} (used by {', '.join(sorted(set(where)))})")
    assert not problems, "metrics not exported by mc-service:\n" + "\n".join(problems)


def test_scrape_has_the_runbook_metrics(scrape):
    exported = exported_names(scrape)
    for name in ["mc_meetings_active", "mc_connections_active", "mc_actor_mailbox_depth",
                 "mc_message_processing_duration_seconds_bucket", "mc_gc_heartbeat_total"]:
        assert name in exported, f"{name} missing from /metrics"
