"""tuning.md covers what issue 7 item 6 asks and documents every flag the binary has."""

import re

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
