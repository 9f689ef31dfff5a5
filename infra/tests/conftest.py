"""Shared fixtures: repository paths, parsed manifests, and the real mc-service binary."""

import pathlib
import subprocess
import sys

import pytest
import yaml

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import mcbin  # noqa: E402

REPO = mcbin.REPO
INFRA = REPO / "infra"
MC_DIR = INFRA / "services" / "meeting-controller"
RULES = INFRA / "docker" / "prometheus" / "rules" / "mc-alerts.yaml"
RULE_TESTS = INFRA / "docker" / "prometheus" / "tests" / "mc-alerts.test.yaml"
DASHBOARDS = INFRA / "grafana" / "dashboards"
RUNBOOK = REPO / "docs/runbook.md"


def load_yaml(path):
    with open(path) as f:
        return yaml.safe_load(f)


def load_all(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d]


@pytest.fixture(scope="session")
def manifests():
    """kind -> list of documents, from every manifest in infra/services/meeting-controller."""
    out = {}
    for p in sorted(MC_DIR.glob("*.yaml")):
        for doc in load_all(p):
            out.setdefault(doc["kind"], []).append(doc)
    return out


@pytest.fixture(scope="session")
def deployment(manifests):
    (dep,) = [d for d in manifests["Deployment"] if d["metadata"]["name"] == "meeting-controller"]
    return dep


@pytest.fixture(scope="session")
def container(deployment):
    (c,) = [c for c in deployment["spec"]["template"]["spec"]["containers"]
            if c["name"] == "meeting-controller"]
    return c


@pytest.fixture(scope="session")
def configmap(manifests):
    (cm,) = [d for d in manifests["ConfigMap"] if d["metadata"]["name"] == "mc-service-config"]
    return cm


@pytest.fixture(scope="session")
def runbook_text():
    """The operator runbook of this repository."""
    assert RUNBOOK.is_file(), f"{RUNBOOK} is missing"
    return RUNBOOK.read_text()


@pytest.fixture(scope="session")
def mc_binary():
    return mcbin.require_binary()


@pytest.fixture(scope="session")
def help_text(mc_binary):
    r = subprocess.run([str(mc_binary), "--help"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, f"mc-service --help failed: {r.stderr}"
    return r.stdout


@pytest.fixture(scope="session")
def scrape(mc_binary, tmp_path_factory):
    """The /metrics text of a real `mc-service --dev` on loopback."""
    tmp = tmp_path_factory.mktemp("scrape")
    proc = mcbin.DevProcess(mc_binary, tmp / "dev")
    try:
        proc.wait_healthy()
        status, body = mcbin.http_get(proc.base + "/metrics")
        assert status == 200, f"/metrics answered {status}"
        return body
    finally:
        proc.kill()
