"""The operator documents keep up with the binary: tuning.md covers the node topics and
every flag; docs/runbook.md's full configuration table lists every flag with its
variable and default, and the README points at it."""

import os
import re
import subprocess

import pytest

from conftest import REPO
from test_config_drift import help_env_entries


def tuning():
    return (REPO / "tuning.md").read_text()


def test_topics():
    text = tuning()
    for topic in ["5.8", "io_uring_disabled", "RLIMIT_MEMLOCK", "seccomp", "CPU manager", "static",
                  "net.core.rmem_max", "net.core.wmem_max", "GSO", "GRO", "IRQ", "RPS", "SO_REUSEPORT",
                  "mc-loadgen ramp"]:
        assert topic in text, topic


def test_sections_named_by_the_binary_errors_exist():
    # shards/src/runtime.rs points operators at these sections by name.
    headings = [h.lower() for h in re.findall(r"^#+ (.*)$", tuning(), re.M)]
    for name in ("io_uring in containers", "memlock"):
        assert any(name in h for h in headings), name


def test_every_flag_is_documented(help_text):
    text = tuning()
    missing = sorted(n for n in help_env_entries(help_text) if f"`{n}`" not in text)
    assert not missing, f"flags of mc-service not described in tuning.md: {missing}"


def runbook_flag_table(runbook_text):
    """variable -> default cell of docs/runbook.md's "Every Flag and Variable" table."""
    section = runbook_text.split("### Every Flag and Variable", 1)[1].split("\n#", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[0].startswith("`"):
            for name in re.findall(r"`([A-Z0-9_]+)`", cells[0]):
                rows[name] = cells[2].strip("`")
    return rows


@pytest.fixture(scope="module")
def defaults_help(mc_binary):
    """`--help` with an environment that sets none of the flags, so clap shows defaults."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    r = subprocess.run([str(mc_binary), "--help"], capture_output=True, text=True, env=env,
                       timeout=30)
    assert r.returncode == 0, r.stderr
    return help_env_entries(r.stdout)


def test_runbook_lists_every_flag_with_its_default(defaults_help, help_text, runbook_text):
    table = runbook_flag_table(runbook_text)
    missing = sorted(n for n in defaults_help if n not in table)
    assert not missing, (
        f"flags of mc-service missing from docs/runbook.md \"Every Flag and Variable\": {missing}")
    for name, entry in defaults_help.items():
        m = re.search(r"\[default:\s*([^\]]*)\]", entry)
        if m:
            assert table[name] == m.group(1).strip(), (
                f"docs/runbook.md gives {name} the default {table[name]!r}, --help says "
                f"{m.group(1).strip()!r}")
    stale = sorted(n for n in table if n not in help_text)
    assert not stale, f"docs/runbook.md lists variables the binary does not know: {stale}"


def test_readme_points_at_the_full_table():
    readme = (REPO / "README.md").read_text()
    assert "docs/runbook.md#every-flag-and-variable" in readme
