"""Collects every PromQL expression from the alert rules and the Grafana dashboards."""

import json

from conftest import DASHBOARDS, RULES, load_yaml


def rule_exprs():
    """(where, expr) for every recording and alerting rule."""
    out = []
    for g in load_yaml(RULES)["groups"]:
        for r in g["rules"]:
            out.append((f"rule {r.get('record') or r.get('alert')}", r["expr"]))
    return out


def recorded_names():
    return {r["record"] for g in load_yaml(RULES)["groups"] for r in g["rules"] if "record" in r}


def _walk_panels(panels):
    for p in panels:
        yield p
        yield from _walk_panels(p.get("panels", []))


def dashboard_exprs():
    """(where, expr) for every panel target and every query variable."""
    out = []
    for path in sorted(DASHBOARDS.glob("*.json")):
        dash = json.loads(path.read_text())
        for p in _walk_panels(dash.get("panels", [])):
            for t in p.get("targets", []):
                if t.get("expr"):
                    out.append((f"{path.name}: {p.get('title')}", t["expr"]))
        for v in dash.get("templating", {}).get("list", []):
            if v.get("type") == "query":
                q = v.get("query")
                q = q.get("query") if isinstance(q, dict) else q
                if q:
                    out.append((f"{path.name}: variable {v['name']}", q))
    return out
