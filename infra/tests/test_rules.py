"""The alert rules hold what the runbook promises (names, thresholds, durations) and
every alert is unit-tested both firing and not firing."""

import re

import pytest

from conftest import RULE_TESTS, RULES, load_yaml

RUNBOOK_CRITICAL = ["MCDown", "MCActorPanic", "MCHighMailboxDepthCritical", "MCHighLatency",
                    "MCHighMessageDropRate"]
ISSUE_WARNINGS = ["MCMailboxDepthElevated", "MCHighMailboxDepthWarning", "MCGCHeartbeatFailing",
                  "MCNearCapacity", "MCHighJoinFailureRate", "MCHighJWTFailureRate"]


@pytest.fixture(scope="module")
def alerts():
    return {r["alert"]: r for g in load_yaml(RULES)["groups"] for r in g["rules"] if "alert" in r}


@pytest.fixture(scope="module")
def records():
    return {r["record"]: r for g in load_yaml(RULES)["groups"] for r in g["rules"] if "record" in r}


def test_runbook_alerts_exist_and_page(alerts, runbook_text):
    for name in RUNBOOK_CRITICAL:
        assert name in runbook_text
        assert alerts[name]["labels"]["severity"] == "critical"
    for name in ISSUE_WARNINGS:
        assert alerts[name]["labels"]["severity"] == "warning"


def test_annotations(alerts):
    for name, r in alerts.items():
        a = r.get("annotations", {})
        for key in ("summary", "description", "runbook_url"):
            assert a.get(key), f"{name} lacks {key}"
        assert a["runbook_url"].startswith("https://") and "/docs/runbook.md#" in a["runbook_url"]


def test_runbook_thresholds(alerts, records):
    assert alerts["MCDown"]["for"] == "1m"
    assert alerts["MCHighMailboxDepthCritical"]["for"] == "2m"
    assert re.search(r"mc_actor_mailbox_depth\b.*> 500$", alerts["MCHighMailboxDepthCritical"]["expr"])
    assert alerts["MCHighLatency"]["for"] == "5m"
    assert alerts["MCHighLatency"]["expr"].endswith("> 0.5")
    p95 = records[alerts["MCHighLatency"]["expr"].split()[0]]["expr"]
    assert "histogram_quantile(0.95" in p95 and "mc_message_processing_duration_seconds_bucket" in p95
    assert alerts["MCHighMessageDropRate"]["for"] == "5m"
    assert alerts["MCHighMessageDropRate"]["expr"].endswith("> 0.01")
    drop = records[alerts["MCHighMessageDropRate"]["expr"].split()[0]]["expr"]
    assert "mc_messages_dropped_total" in drop and "mc_message_processing_duration_seconds_count" in drop
    assert "mc_actor_panics_total" in alerts["MCActorPanic"]["expr"]
    assert "> 50" in alerts["MCMailboxDepthElevated"]["expr"]
    assert "> 100" in alerts["MCHighMailboxDepthWarning"]["expr"]


def test_capacity_threshold_follows_configmap(alerts, configmap):
    capacity = int(configmap["data"]["MC_CAPACITY"])
    threshold = float(alerts["MCNearCapacity"]["expr"].rsplit(">=", 1)[1])
    assert threshold == 0.8 * capacity


def test_every_alert_fires_and_stays_quiet_in_unit_tests(alerts):
    fired, quiet = set(), set()
    for t in load_yaml(RULE_TESTS)["tests"]:
        for case in t.get("alert_rule_test", []):
            (fired if case.get("exp_alerts") else quiet).add(case["alertname"])
    assert set(alerts) <= fired, f"alerts never fired in tests: {set(alerts) - fired}"
    assert set(alerts) <= quiet, f"alerts never checked quiet: {set(alerts) - quiet}"


def github_anchor(heading):
    a = heading.strip().lower()
    a = re.sub(r"[^\w\- ]", "", a)
    return a.replace(" ", "-")


def test_runbook_links_point_at_real_sections(alerts, runbook_text):
    anchors = {github_anchor(h) for h in re.findall(r"^#+ (.*)$", runbook_text, re.M)}
    for name, r in alerts.items():
        anchor = r["annotations"]["runbook_url"].rsplit("#", 1)[1]
        assert anchor in anchors, f"{name}: no runbook section #{anchor}"
