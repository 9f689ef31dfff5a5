"""Runs the real mc-service binary for the tests: --help text and a dev-mode process."""

import os
import pathlib
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request

REPO = pathlib.Path(__file__).resolve().parents[2]


def binary_path():
    """MC_SERVICE_BIN, default target/release/mc-service (relative to the repo root)."""
    p = pathlib.Path(os.environ.get("MC_SERVICE_BIN", "target/release/mc-service"))
    if not p.is_absolute():
        p = REPO / p
    return p


def require_binary():
    p = binary_path()
    assert p.is_file() and os.access(p, os.X_OK), (
        f"mc-service binary not found at {p}: build it with "
        "`cargo build --release --bin mc-service` or set MC_SERVICE_BIN"
    )
    return p


def free_port(kind=socket.SOCK_STREAM):
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url, timeout=2.0):
    """(status, body) of a GET; status 0 when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8", "replace")
    except (urllib.error.URLError, ConnectionError, socket.timeout, OSError):
        return 0, ""


class DevProcess:
    """`mc-service --dev` on loopback with free ports, optionally wrapped by `prefix`
    (e.g. an unprivileged, read-only sandbox)."""

    def __init__(self, binary, dev_dir, prefix=(), env=None, extra_args=()):
        self.http_port = free_port()
        self.wt_port = free_port(socket.SOCK_DGRAM)
        self.base = f"http://127.0.0.1:{self.http_port}"
        args = [
            str(binary), "--dev",
            "--http-bind-address", f"127.0.0.1:{self.http_port}",
            "--webtransport-bind-address", f"127.0.0.1:{self.wt_port}",
            "--dev-dir", str(dev_dir), *extra_args,
        ]
        self.env = dict(os.environ if env is None else env)
        self.env.setdefault("RUST_LOG", "info")
        self.log = open(pathlib.Path(dev_dir).parent / f"mc-{self.http_port}.log", "w+")
        self.proc = subprocess.Popen(
            [*prefix, *args], env=self.env, stdout=self.log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_healthy(self, timeout=30.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"mc-service exited with {self.proc.returncode}:\n{self.output()}")
            status, body = http_get(self.base + "/health")
            if status == 200:
                return body
            time.sleep(0.2)
        raise AssertionError(f"mc-service not healthy after {timeout}s:\n{self.output()}")

    def output(self):
        self.log.flush()
        self.log.seek(0)
        return self.log.read()[-8000:]

    def terminate(self, timeout=90.0):
        """SIGTERM (the pod's STOPSIGNAL), then wait; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        finally:
            self.kill()

    def kill(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        self.log.close()
