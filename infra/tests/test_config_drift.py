"""Config drift: every env var the manifests set is a real flag of the
binary (read from `mc-service --help`), and every runbook variable is in the ConfigMap
with the runbook's default, which is also the binary's default."""

import os
import re
import subprocess

import pytest

from conftest import MC_DIR, load_all


def help_env_entries(help_text):
    """env var -> the collapsed help entry of its flag (clap prints `[env: NAME=]`)."""
    entries, current = [], []
    for line in help_text.splitlines():
        if re.match(r"^\s{1,8}(-\w, )?--[\w-]+", line) and current:
            entries.append(" ".join(current))
            current = []
        current.append(line.strip())
    entries.append(" ".join(current))
    out = {}
    for e in entries:
        for name in re.findall(r"\[env:\s*([A-Za-z0-9_]+)=", e):
            out[name] = e
    return out


@pytest.fixture(scope="session")
def clean_help(mc_binary):
    """`--help` with an environment that sets none of the flags, so clap shows defaults."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    r = subprocess.run([str(mc_binary), "--help"], capture_output=True, text=True, env=env,
                       timeout=30)
    assert r.returncode == 0, r.stderr
    return help_env_entries(r.stdout)


@pytest.fixture(scope="session")
def runbook_vars(runbook_text):
    """name -> default from the runbook's Configuration Reference table."""
    section = runbook_text.split("### Environment Variables", 1)[1].split("###", 1)[0]
    out = {}
    for line in section.splitlines():
        m = re.match(r"^\|\s*`([A-Z0-9_]+)`\s*\|([^|]*)\|([^|]*)\|([^|]*)\|", line)
        if m:
            default = m.group(4).strip().strip("`")
            out[m.group(1)] = None if default == "None" else default
    return out


def container_env(container):
    return {e["name"]: e for e in container.get("env", [])}


def expansion_helpers(container):
    """Env vars that exist only to feed a `$(NAME)` expansion in another env value."""
    env = container_env(container)
    used = set()
    for e in env.values():
        used |= set(re.findall(r"\$\(([A-Za-z0-9_]+)\)", e.get("value", "")))
    return {n for n in used if n in env and "fieldRef" in env[n].get("valueFrom", {})}


def test_help_lists_env_vars(clean_help):
    assert len(clean_help) >= 10, f"too few [env: ...] entries in --help: {sorted(clean_help)}"


def test_runbook_table_parsed(runbook_vars):
    for name in ["GC_REGISTRATION_URL", "MC_REGION", "MC_CAPACITY", "WEBTRANSPORT_BIND_ADDRESS",
                 "HTTP_BIND_ADDRESS", "ACTOR_MAILBOX_SIZE", "GC_HEARTBEAT_INTERVAL_SECS", "RUST_LOG"]:
        assert name in runbook_vars


def test_configmap_keys_are_flags(configmap, clean_help):
    unknown = sorted(set(configmap["data"]) - set(clean_help))
    assert not unknown, f"ConfigMap keys that are not flags of mc-service: {unknown}"


def env_only_secrets(container, help_text):
    """Secret-sourced variables that the binary reads from the environment only (never
    as a flag, docs/architecture.md), recognised because --help names them."""
    return {n for n, e in container_env(container).items()
            if "secretKeyRef" in e.get("valueFrom", {}) and re.search(rf"\b{n}\b", help_text)}


def test_deployment_env_are_flags(container, clean_help, help_text):
    helpers = expansion_helpers(container)
    secrets = env_only_secrets(container, help_text)
    unknown = sorted(set(container_env(container)) - set(clean_help) - helpers - secrets)
    assert not unknown, f"Deployment env vars that are not flags of mc-service: {unknown}"
    # A helper is never also a config value: it must come from the downward API.
    assert helpers <= {"NODE_IP", "POD_NAME"}, f"unexpected expansion helpers {helpers}"


def test_every_runbook_variable_in_configmap(configmap, runbook_vars):
    missing = sorted(set(runbook_vars) - set(configmap["data"]))
    assert not missing, f"runbook variables missing from mc-service-config: {missing}"


def test_configmap_matches_runbook_defaults(configmap, runbook_vars):
    for name, default in runbook_vars.items():
        if default is not None:
            assert configmap["data"][name] == default, (name, configmap["data"][name], default)


def test_binary_defaults_match_runbook(clean_help, runbook_vars):
    for name, default in runbook_vars.items():
        assert name in clean_help, f"runbook variable {name} is not a flag of mc-service"
        entry = clean_help[name]
        if default is None:
            assert "[default:" not in entry, f"{name} is required by the runbook: {entry}"
        else:
            m = re.search(r"\[default:\s*([^\]]*)\]", entry)
            assert m and m.group(1).strip() == default, f"{name}: runbook {default!r}, help: {entry}"


def test_secret_keys_are_read_by_the_binary_and_wired(container, clean_help, help_text):
    (secret,) = load_all(MC_DIR / "secret.example.yaml")
    keys = set(secret.get("stringData", {})) | set(secret.get("data", {}))
    assert {"TLS_CERT", "TLS_KEY"} <= keys
    env = container_env(container)
    for k in keys:
        assert k in clean_help or re.search(rf"\b{k}\b", help_text), (
            f"secret key {k} is neither a flag nor an environment variable named in --help")
        ref = env[k]["valueFrom"]["secretKeyRef"]
        assert ref == {"name": "mc-service-secrets", "key": k}
