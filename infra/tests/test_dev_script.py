"""`scripts/dev`, the README's first command: the service in development mode registered
with a development GC it starts itself; SIGTERM drains and stops both."""

import os
import pathlib
import re
import signal
import socket
import subprocess
import time

import mcbin

SCRIPT = mcbin.REPO / "scripts" / "dev"


def devgc_binary():
    """MC_DEVGC_BIN, default the mc-devgc beside the mc-service binary."""
    p = pathlib.Path(os.environ.get("MC_DEVGC_BIN") or (mcbin.require_binary().parent / "mc-devgc"))
    assert p.is_file(), f"mc-devgc binary not found at {p}: build it with `cargo build --release --bin mc-devgc`"
    return p


def start(tmp_path, gc_bind, args=()):
    http_port = mcbin.free_port()
    wt_port = mcbin.free_port(socket.SOCK_DGRAM)
    env = dict(
        os.environ,
        MC_SERVICE_BIN=str(mcbin.require_binary()),
        MC_DEVGC_BIN=str(devgc_binary()),
        MC_DEVGC_BIND=gc_bind,
        MC_DEV_DIR=str(tmp_path / "dev"),
        RUST_LOG="info",
    )
    out = open(tmp_path / "dev.out", "w+")
    proc = subprocess.Popen(
        [str(SCRIPT), "--shards", "1",
         "--http-bind-address", f"127.0.0.1:{http_port}",
         "--webtransport-bind-address", f"127.0.0.1:{wt_port}", *args],
        cwd=mcbin.REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
    )
    return proc, out, f"http://127.0.0.1:{http_port}"


def read(out):
    out.flush()
    out.seek(0)
    return out.read()


def children_of(pid):
    """The direct children of `pid` (setsid starts a new session, not a new parent)."""
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    return [int(p) for p in found]


def test_dev_script_runs_the_service_registered_with_a_local_gc(tmp_path):
    proc, out, base = start(tmp_path, "127.0.0.1:0")
    try:
        deadline = time.monotonic() + 20
        status, body = 0, ""
        while time.monotonic() < deadline:
            status, body = mcbin.http_get(base + "/ready")
            if status == 200 and '"gc_registered":true' in body:
                break
            assert proc.poll() is None, f"scripts/dev exited early:\n{read(out)}"
            time.sleep(0.2)
        assert status == 200 and '"gc_registered":true' in body, (status, body, read(out))

        m = re.search(r"mc-devgc on (http://\S+)", read(out))
        assert m, read(out)
        _, rows = mcbin.http_get(m.group(1) + "/api/v1/mc")
        assert '"status":"active"' in rows, rows
        children = children_of(proc.pid)
        assert len(children) == 2, children

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, read(out)
        log = read(out)
        assert "Drain complete" in log and "Deregistered from GC" in log, log
        # Stopping is not a GC failure.
        assert "GC heartbeat failed" not in log, log
        for pid in children:
            assert not os.path.exists(f"/proc/{pid}"), f"process {pid} outlived scripts/dev"
    finally:
        if proc.poll() is None:
            for pid in children_of(proc.pid):
                os.kill(pid, signal.SIGKILL)
            proc.kill()
            proc.wait()
        out.close()


def test_dev_script_fails_clearly_when_the_gc_address_is_taken(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        addr = "127.0.0.1:%d" % taken.getsockname()[1]
        proc, out, base = start(tmp_path, addr)
        try:
            assert proc.wait(timeout=30) != 0
            log = read(out)
            assert f"mc-devgc did not start on {addr}" in log, log
            assert mcbin.http_get(base + "/health")[0] == 0, "the service must not start without its GC"
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            out.close()


def test_dev_script_exits_with_the_service_status_when_the_service_cannot_start(tmp_path):
    proc, out, _ = start(tmp_path, "127.0.0.1:0", args=["--capacity", "lots"])
    try:
        assert proc.wait(timeout=30) == 2, read(out)
        log = read(out)
        assert "--capacity" in log and "mc-devgc on http://" in log, log
        assert children_of(proc.pid) == []
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        out.close()
