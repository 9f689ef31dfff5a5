"""The external validators: yamllint, promtool, kubernetes-validate, hadolint."""

import shutil
import subprocess

from conftest import INFRA, MC_DIR, REPO, RULE_TESTS, RULES


def run(cmd, **kw):
    tool = shutil.which(cmd[0])
    assert tool, f"{cmd[0]} is not installed (infra/tests/run.sh installs it)"
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, **kw)
    assert r.returncode == 0, f"{' '.join(map(str, cmd))} failed:\n{r.stdout}\n{r.stderr}"
    return r


def test_yamllint_everything():
    files = sorted(str(p) for p in INFRA.rglob("*.y*ml")) + [str(REPO / "skaffold.yaml")]
    assert len(files) >= 10
    run(["yamllint", "--strict", "-c", str(INFRA / ".yamllint"), *files])


def test_promtool_check_rules():
    run(["promtool", "check", "rules", str(RULES)])


def test_promtool_test_rules():
    out = run(["promtool", "test", "rules", str(RULE_TESTS)])
    assert "SUCCESS" in out.stdout + out.stderr


def test_kubernetes_validate_each_manifest():
    files = sorted(str(p) for p in MC_DIR.glob("*.yaml") if p.name != "kustomization.yaml")
    run(["kubernetes-validate", "--strict", "--quiet", *files])


def test_kubernetes_validate_rendered_kustomization(tmp_path):
    r = run(["kubectl", "kustomize", str(MC_DIR)])
    out = tmp_path / "rendered.yaml"
    out.write_text(r.stdout)
    run(["kubernetes-validate", "--strict", "--quiet", str(out)])


def test_hadolint_dockerfile():
    run(["hadolint", "--failure-threshold", "warning", str(REPO / "Dockerfile")])
