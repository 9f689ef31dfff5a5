"""The image contract without a Docker engine (none here): the Dockerfile is checked
for the image rules (infra/README.md "Validating the image without Docker"), and the real binary is run the way the pod runs it: as
the image's unprivileged user, from a read-only copy, on a read-only root filesystem
with only /tmp writable, with the production ConfigMap values; SIGTERM must end it
with exit code 0 (drain then exit)."""

import os
import pathlib
import re
import shutil
import stat
import tempfile

import pytest

import mcbin
from conftest import REPO

UID = 65532  # the Dockerfile's USER and the pod's runAsUser


@pytest.fixture(scope="module")
def dockerfile():
    return (REPO / "Dockerfile").read_text()


def instructions(text):
    text = re.sub(r"\\\n", " ", text)
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def test_multi_stage_non_root_minimal(dockerfile):
    ins = instructions(dockerfile)
    froms = [i for i in ins if i.upper().startswith("FROM ")]
    assert len(froms) >= 2, "multi-stage build expected"
    assert re.search(r"distroless|scratch|-slim\b", froms[-1]), froms[-1]
    # The runbook runs `kubectl exec ... -- curl -i $GC_REGISTRATION_URL` in the pod.
    assert re.search(r"apt-get install .*--no-install-recommends.* curl", dockerfile.replace("\\\n", " "))
    users = [i.split()[1] for i in ins if i.upper().startswith("USER ")]
    assert users and users[-1].split(":")[0] == str(UID)
    assert any(re.fullmatch(r"EXPOSE\s+.*4433/udp.*", i) for i in ins)
    assert any(re.fullmatch(r"EXPOSE\s+.*8080/tcp.*", i) for i in ins)
    assert "STOPSIGNAL SIGTERM" in ins
    assert any("org.opencontainers.image.version" in i for i in ins if i.upper().startswith("LABEL"))
    assert "cargo build --release" in dockerfile and "--bin mc-service" in dockerfile


def test_no_secrets_baked_in(dockerfile):
    for i in instructions(dockerfile):
        word = i.split()[0].upper()
        if word in ("ENV", "ARG"):
            assert not re.search(r"TLS_KEY|SECRET|PASSWORD|TOKEN|PRIVATE", i, re.I), i
    assert "BEGIN" not in dockerfile


def test_dockerignore_keeps_context_small_and_clean():
    lines = (REPO / ".dockerignore").read_text().split()
    for must in ("target", ".git", ".mc-dev"):
        assert any(line.strip("/*") == must for line in lines), must


def test_dockerignore_keeps_what_cargo_needs():
    import fnmatch
    patterns = [p.strip().rstrip("/") for p in (REPO / ".dockerignore").read_text().splitlines()
                if p.strip() and not p.startswith("#")]
    for needed in ("Cargo.toml", "Cargo.lock", "build.rs", "src", "shards", "bench", "tests", "proto"):
        assert not any(fnmatch.fnmatch(needed, pat) for pat in patterns), needed


def test_runs_unprivileged_on_read_only_root(mc_binary, configmap):
    assert os.geteuid() == 0, "this test sandboxes the binary and must run as root (CI does)"
    for tool in ("unshare", "setpriv"):
        assert shutil.which(tool), f"{tool} (util-linux) is required"
    # pytest's tmp_path is private to root (0700): use a world-traversable directory.
    tmp_path = pathlib.Path(tempfile.mkdtemp(prefix="mc-image-"))
    os.chmod(tmp_path, 0o755)
    try:
        _run_sandboxed(mc_binary, configmap, tmp_path)
    finally:
        shutil.rmtree(tmp_path, ignore_errors=True)


def _run_sandboxed(mc_binary, configmap, tmp_path):
    # A read-only copy of the image's files: /usr/local/bin/mc-service, mode 0555, root-owned.
    image = tmp_path / "image"
    (image / "bin").mkdir(parents=True)
    binary = image / "bin" / "mc-service"
    shutil.copy2(mc_binary, binary)
    os.chmod(binary, stat.S_IRUSR | stat.S_IXUSR | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH)
    os.chmod(image / "bin", 0o555)
    scratch = tmp_path / "tmp"  # the pod's emptyDir at /tmp
    scratch.mkdir()
    # Private mount namespace: tmpfs on the scratch dir, every other mount of interest
    # remounted read-only, then drop to the unprivileged user with no capabilities.
    script = (
        f"set -e; mount -t tmpfs -o size=64m,uid={UID},gid={UID} tmpfs {scratch}; "
        "for m in $(findmnt -rn -o TARGET | grep -Ev '^/(proc|sys|dev)(/|$)'); do "
        f"  case \"$m\" in {scratch}) continue;; esac; "
        "  mount -o remount,bind,ro \"$m\" 2>/dev/null || true; "
        "done; "
        f"if touch {image}/probe 2>/dev/null || touch /probe 2>/dev/null; then "
        "  echo 'sandbox is not read-only' >&2; exit 97; fi; "
        f"exec setpriv --reuid={UID} --regid={UID} --clear-groups --inh-caps=-all "
        "--bounding-set=-all --no-new-privs \"$@\""
    )
    prefix = ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sandbox"]
    env = {k: v for k, v in configmap["data"].items()
           if k not in ("GC_REGISTRATION_URL", "MC_JWKS_URL", "HTTP_BIND_ADDRESS", "WEBTRANSPORT_BIND_ADDRESS")}
    env.update({"PATH": "/usr/bin:/bin", "HOME": str(scratch), "MC_DRAIN_TIMEOUT_SECS": "5",
                "MC_LOG_FORMAT": "json"})
    # The binary refuses more shards than usable CPUs; a smaller test machine gets fewer.
    env["MC_SHARDS"] = str(min(int(env.get("MC_SHARDS", "1")), len(os.sched_getaffinity(0))))
    proc = mcbin.DevProcess(binary, scratch / "dev", prefix=prefix, env=env)
    try:
        assert proc.wait_healthy(timeout=40).strip() == "OK"
        status, body = mcbin.http_get(proc.base + "/metrics")
        assert status == 200 and "mc_meetings_active" in body
        code = proc.terminate(timeout=40)
        assert code == 0, f"exit code {code} after SIGTERM:\n{proc.output()}"
    finally:
        proc.kill()
