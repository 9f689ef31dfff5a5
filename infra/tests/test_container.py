"""The image, built and run for real with podman and no registry (podman.py says how).

The container runs the way the Deployment runs the pod: its user, read-only root with
only /tmp writable, no capabilities, no privilege escalation, the project's seccomp
profile, its CPU and memory limits, the memlock limit of a current node, the ConfigMap
and Secret as environment, the downward-API fields, and the grace period as stop
timeout. mc-devgc on the host is the GC. Against it: /health, /ready after registration,
/metrics, the GC's record of the MC, curl from inside the container to the GC (the
runbook's troubleshooting command), a real WebTransport client joining a meeting through
the published UDP port, and SIGTERM draining a live meeting before a clean exit. Then
containers of their own: the computed memlock need suffices; with far too little
memlock, or a seccomp profile that refuses io_uring, the MC exits 1 at once with one
error naming the cause. The build context that .dockerignore leaves is checked too.

Where the test environment differs from a cluster (on purpose, and only there):
- GC_REGISTRATION_URL points at mc-devgc on the host (`host.containers.internal`);
- MC_JWKS_URL is replaced by MC_JWKS_PATH, a JWKS file mounted read-only whose key the
  WebTransport client signs with (mc-devgc serves no JWKS);
- the published host ports are free ports on 127.0.0.1 rather than hostPort 4433, and
  MC_ADVERTISE_WEBTRANSPORT names the published one, as `https://$(NODE_IP):4433` does
  in the cluster;
- MC_SHARDS is lowered when the machine has fewer CPUs than the ConfigMap's value.

Binaries: MC_SERVICE_BIN (the image's binary), MC_DEVGC_BIN and MC_LOADGEN_BIN, by
default target/release/{mc-service,mc-devgc,mc-loadgen}.
"""

import json
import os
import pathlib
import re
import shutil
import socket
import subprocess
import tarfile
import tempfile
import time

import pytest

import mcbin
import podman
from conftest import MC_DIR, REPO

SECCOMP_PROFILE = MC_DIR / "seccomp" / "mc-service.json"
IO_URING_CALLS = ["io_uring_setup", "io_uring_enter", "io_uring_register"]
# Figures printed at the end of the module (image size, build times).
REPORT = {}


def tool_binary(env, name):
    p = pathlib.Path(os.environ.get(env, f"target/release/{name}"))
    p = p if p.is_absolute() else REPO / p
    assert p.is_file() and os.access(p, os.X_OK), (
        f"{name} not found at {p}: build it with `cargo build --release --workspace --bins` "
        f"or set {env}")
    return p


def cargo_version():
    m = re.search(r'^version\s*=\s*"([^"]+)"', (REPO / "Cargo.toml").read_text(), re.M)
    return m.group(1)


def git_sha():
    r = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 0, f"git rev-parse HEAD failed: {r.stderr}"
    return r.stdout.strip()


@pytest.fixture(scope="module")
def workdir():
    # World-traversable: the container's user (65532) reads the mounted JWKS from here.
    d = pathlib.Path(tempfile.mkdtemp(prefix="mc-container-"))
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def image(mc_binary, workdir):
    """The image: locally made base, production runtime stage, host-built binary."""
    dockerfile = (REPO / "Dockerfile").read_text()
    release = podman.dockerfile_arg(dockerfile, "DEBIAN_RELEASE")
    base_ref = f"localhost/debian:{release}-slim"
    tag = f"localhost/mc-service-image-test:{os.getpid()}"
    build_args = {"VERSION": cargo_version(), "GIT_SHA": git_sha()}
    try:
        tarball, base_secs = podman.base_tarball(release)
        start = time.monotonic()
        podman.podman("rmi", "--ignore", base_ref)
        podman.podman("import", tarball, base_ref, timeout=300)
        import_secs = time.monotonic() - start
        build_secs = podman.build_image(dockerfile, mc_binary, workdir, tag, build_args)
        REPORT.update(base_secs=base_secs, import_secs=import_secs, build_secs=build_secs,
                      base_cached=base_secs == 0.0)
        yield {"ref": tag, "base_ref": base_ref, "info": podman.inspect_image(tag),
               "base_info": podman.inspect_image(base_ref), "build_args": build_args,
               "binary_bytes": mc_binary.stat().st_size}
    finally:
        podman.podman("rmi", "--ignore", "--force", tag, base_ref, check=False)


# ------------------------------------------------------------------- the running pod


class Pod:
    """One container of the image, run as the Deployment runs it, plus its GC."""

    def __init__(self, name, ports, env, gc_url, gc_log, keys):
        self.name, self.ports, self.env = name, ports, env
        self.gc_url, self.gc_log, self.keys = gc_url, gc_log, keys
        self.admin = f"http://127.0.0.1:{ports['8080/tcp']}"
        self.webtransport = f"https://127.0.0.1:{ports['4433/udp']}/"

    def logs(self):
        r = podman.podman("logs", self.name, check=False)
        return (r.stdout + r.stderr)[-12000:]

    def state(self):
        r = podman.podman("inspect", "--format", "{{.State.Status}} {{.State.ExitCode}}",
                          self.name, check=False)
        return r.stdout.strip()

    def exec(self, *cmd, timeout=30):
        return podman.podman("exec", self.name, *cmd, timeout=timeout, check=False)

    def get(self, path, timeout=2.0):
        return mcbin.http_get(self.admin + path, timeout=timeout)

    def gc_rows(self):
        status, body = mcbin.http_get(self.gc_url + "/api/v1/mc")
        assert status == 200, f"mc-devgc /api/v1/mc answered {status}"
        return {row["id"]: row for row in json.loads(body)}

    def wait_ready(self, timeout=60.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status, body = self.get("/ready")
            if status == 200:
                return body
            if not self.state().startswith("running"):
                raise AssertionError(f"container stopped ({self.state()}):\n{self.logs()}")
            time.sleep(0.3)
        raise AssertionError(f"/ready not 200 after {timeout}s:\n{self.logs()}")


def free_ports():
    return {"4433/udp": mcbin.free_port(socket.SOCK_DGRAM), "8080/tcp": mcbin.free_port()}


def create_network(name):
    """A bridge network of its own, so the pod's IP (POD_IP) and the gateway the GC
    listens on are known before the container starts. Returns (subnet prefix, gateway)."""
    taken = podman.podman("network", "ls", "--format", "{{.Subnets}}").stdout
    for third in range(200, 250):
        prefix = f"10.89.{(os.getpid() + third) % 250}"
        if f"{prefix}.0/" in taken:
            continue
        r = podman.podman("network", "create", "--subnet", f"{prefix}.0/24", name, check=False)
        if r.returncode == 0:
            return prefix, f"{prefix}.1"
    raise AssertionError(f"cannot create a podman network: {r.stderr}")


def container_env(deployment, container, configmap, keys, pod_name, pod_ip, gc_port, ports):
    secrets = {"TLS_CERT": keys["cert"].read_text(), "TLS_KEY": keys["key"].read_text(),
               "MC_BINDING_TOKEN_SECRET": keys["binding_secret"]}
    fields = {"metadata.name": pod_name, "status.podIP": pod_ip, "status.hostIP": "127.0.0.1"}
    env = podman.pod_env(container, configmap, secrets, fields)
    # The module docs list these differences from a cluster.
    assert env["GC_REGISTRATION_URL"].endswith("/api/v1/mc/register")
    env["GC_REGISTRATION_URL"] = f"http://host.containers.internal:{gc_port}/api/v1/mc/register"
    assert env.pop("MC_JWKS_URL", None), "the ConfigMap no longer sets MC_JWKS_URL"
    env["MC_JWKS_PATH"] = "/etc/mc-service/jwks.json"
    assert env["MC_ADVERTISE_WEBTRANSPORT"] == "https://127.0.0.1:4433"
    env["MC_ADVERTISE_WEBTRANSPORT"] = f"https://127.0.0.1:{ports['4433/udp']}"
    env["MC_SHARDS"] = str(min(int(env["MC_SHARDS"]), len(os.sched_getaffinity(0))))
    return env


def create_container(name, image_ref, deployment, container, env, ports, keys, profile,
                     network_args):
    """`podman create` of the pod's container; env values travel in podman's own
    environment (`-e NAME`), never on its command line."""
    run_args = podman.pod_run_args(deployment, container, profile, ports)
    names = [a for k in env for a in ("-e", k)]
    podman.podman("create", "--name", name, "--hostname", env.get("POD_NAME", name),
                  "--pull=never", "--log-driver=k8s-file", *network_args, *run_args,
                  "-v", f"{keys['jwks']}:/etc/mc-service/jwks.json:ro",
                  *names, image_ref, env={**os.environ, **env}, timeout=120)


@pytest.fixture(scope="module")
def pod(image, deployment, container, configmap, workdir):
    devgc = tool_binary("MC_DEVGC_BIN", "mc-devgc")
    keys = podman.make_keys(workdir)
    network = f"mc-image-test-{os.getpid()}"
    # Named like a Deployment's pod; the container, its hostname and POD_NAME share it.
    name = f"meeting-controller-test-{os.getpid()}"
    gc = None
    created_network = False
    gc_log = open(workdir / "mc-devgc.log", "w+")
    try:
        prefix, gateway = create_network(network)
        created_network = True
        pod_ip = f"{prefix}.10"
        gc_port = mcbin.free_port()
        ports = free_ports()
        env = container_env(deployment, container, configmap, keys, name, pod_ip,
                            gc_port, ports)
        create_container(name, image["ref"], deployment, container, env, ports, keys,
                         SECCOMP_PROFILE, ["--network", network, "--ip", pod_ip])
        # `init` sets the network up (the bridge gets the gateway address), so the GC
        # can listen on the gateway only, not on every interface of the machine.
        podman.podman("init", name)
        gc = subprocess.Popen([str(devgc), "--bind", f"{gateway}:{gc_port}"],
                              stdout=subprocess.PIPE, stderr=gc_log, text=True,
                              start_new_session=True)
        line = gc.stdout.readline()
        assert "mc-devgc listening on" in line, f"mc-devgc did not start: {line!r}"
        podman.podman("start", name)
        p = Pod(name, ports, env, f"http://{gateway}:{gc_port}", workdir / "mc-devgc.log", keys)
        p.wait_ready()
        yield p
    finally:
        podman.podman("rm", "--force", "--time", "0", name, check=False)
        if gc is not None:
            gc.kill()
            gc.wait(timeout=10)
        gc_log.close()
        if created_network:
            podman.podman("network", "rm", "--force", network, check=False)


# ----------------------------------------------------------------------------- checks


def test_image_metadata_as_documented(image):
    """Infra README "The image": user, entrypoint, ports, signal, labels, base."""
    cfg = image["info"]["Config"]
    assert cfg["User"] == "65532:65532"
    assert cfg["Entrypoint"] == ["/usr/local/bin/mc-service"]
    assert not cfg.get("Cmd")
    assert set(cfg["ExposedPorts"]) == {"4433/udp", "8080/tcp"}
    assert cfg["StopSignal"] == "SIGTERM"
    assert cfg["WorkingDir"] == "/tmp"
    assert "MC_LOG_FORMAT=json" in cfg["Env"]
    labels = cfg["Labels"]
    assert labels["org.opencontainers.image.title"] == "mc-service"
    assert labels["org.opencontainers.image.version"] == image["build_args"]["VERSION"]
    assert labels["org.opencontainers.image.revision"] == image["build_args"]["GIT_SHA"]
    assert labels["org.opencontainers.image.licenses"] == "Apache-2.0"
    assert labels["org.opencontainers.image.description"]
    # Built on the locally made base: its layers are the image's first layers.
    base_layers = image["base_info"]["RootFS"]["Layers"]
    assert image["info"]["RootFS"]["Layers"][:len(base_layers)] == base_layers
    # The binary is where the entrypoint says, root-owned and read-only (0555).
    r = podman.podman("run", "--rm", "--pull=never", "--network=none", *podman.rlimit_args(),
                      "--entrypoint", "stat", image["ref"],
                      "-c", "%a %u:%g %s", "/usr/local/bin/mc-service")
    assert r.stdout.split() == ["555", "0:0", str(image["binary_bytes"])]


def test_build_context_per_dockerignore(workdir):
    """What a builder sends for `docker build .`, per .dockerignore: every source cargo
    needs, none of the build output, dependencies or local state, wherever they sit."""
    tracked = subprocess.run(["git", "-C", str(REPO), "ls-files", "-z"], capture_output=True,
                             timeout=60, check=True).stdout.decode().split("\0")
    tracked = [t for t in tracked if t and (REPO / t).is_file()]
    context = workdir / "build-context"
    for rel in tracked:
        (context / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, context / rel)
    decoys = ["target/release/mc-service", "fuzz/target/x86_64/release/fuzz_frame",
              "tests/browser/node_modules/playwright-core/index.js", ".mc-dev/signing-key.pem",
              ".git/HEAD", "bench/results/run.log", "src/debug.log"]
    for rel in decoys:
        (context / rel).parent.mkdir(parents=True, exist_ok=True)
        (context / rel).write_text("decoy\n")
    (workdir / "Containerfile.context").write_text("FROM scratch\nCOPY . /ctx/\n")
    tag = f"localhost/mc-image-test-context:{os.getpid()}"
    name = f"mc-image-test-context-{os.getpid()}"
    try:
        podman.podman("build", "--pull=never", "--layers=false", "--quiet", "-f",
                      workdir / "Containerfile.context", "-t", tag, context, timeout=300)
        podman.podman("create", "--name", name, tag, "none")
        export = workdir / "context.tar"
        podman.podman("export", "-o", export, name, timeout=300)
        with tarfile.open(export) as tar:
            sent = {m.name.removeprefix("./").removeprefix("ctx/") for m in tar.getmembers()
                    if m.isfile()}
    finally:
        podman.podman("rm", "--force", name, check=False)
        podman.podman("rmi", "--ignore", "--force", tag, check=False)
    for rel in decoys:
        assert rel not in sent, f"{rel} is sent to the builder"
    needed = [t for t in tracked if re.match(r"(Cargo\.(toml|lock)|build\.rs|(src|proto|shards)/"
                                              r"|bench/(Cargo\.toml|src/|benches/))", t)]
    missing = sorted(set(needed) - sent)
    assert not missing, f"the build context lacks {missing}"
    for top in ("infra/", "fuzz/", ".ci/"):
        assert not any(s.startswith(top) for s in sent), f"{top} is sent to the builder"


def test_health_ready_metrics(pod):
    assert pod.get("/health") == (200, "OK")
    status, body = pod.get("/ready")
    assert status == 200
    assert json.loads(body) == {"status": "ready", "gc_registered": True,
                                "actor_system": "healthy"}
    status, body = pod.get("/metrics")
    assert status == 200
    for metric in ("mc_meetings_active", "mc_connections_active", "mc_actor_mailbox_depth"):
        assert metric in body
    assert re.search(r"^mc_gc_registered 1$", body, re.M), "metrics do not show the registration"
    assert re.search(rf"^mc_shards {pod.env['MC_SHARDS']}$", body, re.M)


def test_process_runs_as_the_pod_specifies(pod):
    status = pod.exec("cat", "/proc/1/status").stdout
    fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
    assert fields["Uid"].split()[:2] == ["65532", "65532"]
    assert fields["Gid"].split()[:2] == ["65532", "65532"]
    assert int(fields["CapEff"], 16) == 0 and int(fields["CapBnd"], 16) == 0
    assert fields["NoNewPrivs"].strip() == "1"
    assert fields["Seccomp"].strip() == "2", "the seccomp filter is not applied"
    limits = pod.exec("cat", "/proc/1/limits").stdout
    (memlock,) = [line for line in limits.splitlines() if line.startswith("Max locked memory")]
    soft = int(memlock.split()[3])
    assert soft == podman.MEMLOCK_BYTES
    assert soft >= executors_memlock(pod.env)
    # Read-only root, writable /tmp.
    r = pod.exec("touch", "/usr/local/bin/probe")
    assert r.returncode != 0 and "Read-only file system" in r.stderr, r.stderr
    assert pod.exec("touch", "/probe").returncode != 0
    assert pod.exec("touch", "/tmp/probe").returncode == 0


def test_registered_with_gc_with_advertised_addresses(pod):
    rows = pod.gc_rows()
    mc_id = pod.env["MC_ID"]
    assert mc_id == f"mc-{pod.env['POD_NAME']}"
    assert mc_id in rows, f"GC rows: {rows}"
    row = rows[mc_id]
    assert row["status"] == "active"
    assert row["region"] == pod.env["MC_REGION"]
    assert row["capacity"] == int(pod.env["MC_CAPACITY"])
    assert row["webtransport_endpoint"] == pod.env["MC_ADVERTISE_WEBTRANSPORT"]
    assert row["http_endpoint"] == f"http://{pod.env['POD_IP']}:8080"


def test_curl_inside_the_container_reaches_the_gc(pod):
    # Runbook "GC Registration Failures": curl -i $GC_REGISTRATION_URL from the pod.
    r = pod.exec("sh", "-c", 'curl -sS -i --max-time 10 "$GC_REGISTRATION_URL"')
    assert r.returncode == 0, f"curl failed: {r.stderr}"
    # mc-devgc answers a GET on the registration URL with 405 (POST only): reached.
    assert re.match(r"HTTP/1\.1 405 ", r.stdout), r.stdout[:500]


def loadgen(pod, *scenario, duration, json_path):
    binary = tool_binary("MC_LOADGEN_BIN", "mc-loadgen")
    cmd = [str(binary), "--duration", str(duration), "--progress", "1", "--json", str(json_path),
           "--threads", "1", *scenario,
           "--target", pod.webtransport, "--cert-hash", pod.keys["cert_sha256"],
           "--signing-key", str(pod.keys["signing_key"]), "--kid", pod.keys["kid"]]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)


def finish(proc, timeout):
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate(timeout=10)
        raise AssertionError(f"mc-loadgen did not finish within {timeout}s:\n{out[-4000:]}")
    return proc.returncode, out


def metric_sum(body, name, **labels):
    total = 0.0
    for line in body.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_webtransport_meeting_through_the_published_udp_port(pod, workdir):
    proc = loadgen(pod, "meeting", "--sizes", "1x3", "--rate", "15",
                   "--meeting-prefix", "image-test", duration=4,
                   json_path=workdir / "meeting.json")
    code, out = finish(proc, timeout=90)
    assert code == 0 and "result: PASS" in out, f"mc-loadgen meeting:\n{out[-4000:]}\n{pod.logs()}"
    figures = json.loads((workdir / "meeting.json").read_text())
    assert figures["passed"] is True
    _, body = pod.get("/metrics")
    assert metric_sum(body, "mc_jwt_validations_total", result="success") >= 3
    assert metric_sum(body, "mc_session_joins_total", status="success") >= 3


def test_sigterm_drains_a_live_meeting_then_exits_zero(pod, deployment, workdir):
    grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    _, body = pod.get("/metrics")
    joined_before = metric_sum(body, "mc_session_joins_total", status="success")
    meeting = loadgen(pod, "meeting", "--sizes", "1x2", "--rate", "4",
                      "--meeting-prefix", "image-drain", duration=12,
                      json_path=workdir / "drain.json")
    try:
        # SIGTERM once both participants are in (a draining MC admits nobody).
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            _, body = pod.get("/metrics")
            if metric_sum(body, "mc_session_joins_total", status="success") >= joined_before + 2:
                break
            assert meeting.poll() is None, f"mc-loadgen ended early:\n{meeting.stdout.read()}"
            time.sleep(0.2)
        else:
            raise AssertionError(f"no meeting became active:\n{pod.logs()}")

        start = time.monotonic()
        # `podman stop` sends the image's STOPSIGNAL (SIGTERM) to PID 1, waits up to the
        # container's stop timeout (the grace period), then SIGKILLs.
        stopper = subprocess.Popen([*podman.base_cmd(), "stop", pod.name],
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        draining = None
        while time.monotonic() - start < 10:
            status, body = pod.get("/ready")
            if status == 503 and '"draining"' in body:
                draining = time.monotonic() - start
                break
            time.sleep(0.1)
        assert draining is not None, f"/ready never reported draining:\n{pod.logs()}"
        assert pod.gc_rows()[pod.env["MC_ID"]]["status"] in ("draining", "active")

        # The meeting carries on through the drain and ends on its own; then the MC exits.
        code, out = finish(meeting, timeout=60)
        assert code == 0 and "result: PASS" in out, f"meeting during the drain:\n{out[-4000:]}"
        try:
            stopper.wait(timeout=grace + 15)
        finally:
            stopper.kill()
        elapsed = time.monotonic() - start
    finally:
        if meeting.poll() is None:
            meeting.kill()
    logs = pod.logs()
    assert pod.state() == "exited 0", f"{pod.state()} after SIGTERM:\n{logs}"
    assert elapsed < grace, f"took {elapsed:.1f}s, grace period is {grace}s"
    for line in ("Drain started", "Drain: no live meetings left", "Drain complete",
                 "Meeting Controller stopped"):
        assert line in logs, f"{line!r} missing from the logs:\n{logs}"
    assert "Deregistered from GC" in logs
    # The GC's address went away with the container's network: read its request log.
    gc_log = pod.gc_log.read_text()
    assert re.search(rf"POST /api/v1/mc/deregister -> 200 .*id={re.escape(pod.env['MC_ID'])}\b",
                     gc_log), gc_log[-4000:]
    REPORT["drain_secs"] = elapsed


def executors_memlock(env):
    """RLIMIT_MEMLOCK the MC needs: 3 io_uring rings per executor (one per shard plus the
    control plane's), each registering MC_IO_MEMORY_BYTES, plus 1 MiB for the rings."""
    return (int(env["MC_SHARDS"]) + 1) * 3 * int(env["MC_IO_MEMORY_BYTES"]) + (1 << 20)


def run_dev_image(image, deployment, container, configmap, memlock, wait_for, timeout=30):
    """The image in --dev mode (no GC, loopback only) with the ConfigMap's shards and io
    memory, the pod's security settings and `memlock` bytes of RLIMIT_MEMLOCK. Returns
    (exit code or None while running, logs) once `wait_for` is logged or it exits.
    It runs as a UID of its own: io_uring charges locked memory to the UID across the
    machine, and other runs of the image (UID 65532) must not share its budget."""
    env = {k: configmap["data"][k] for k in ("MC_SHARDS", "MC_IO_MEMORY_BYTES")}
    env["MC_SHARDS"] = str(min(int(env["MC_SHARDS"]), len(os.sched_getaffinity(0))))
    uid = 40000 + os.getpid() % 20000
    name = f"meeting-controller-test-{os.getpid()}-memlock"
    args = podman.pod_run_args(deployment, container, SECCOMP_PROFILE, free_ports(),
                               memlock=memlock, uid=uid)
    try:
        podman.podman("create", "--name", name, "--pull=never", "--log-driver=k8s-file", *args,
                      *(a for k in env for a in ("-e", k)), image["ref"],
                      "--dev", "--dev-dir", "/tmp/dev", env={**os.environ, **env})
        podman.podman("start", name)
        deadline = time.monotonic() + timeout
        while True:
            logs = podman.podman("logs", name, check=False).stdout
            code = podman.podman("inspect", "--format", "{{.State.Status}} {{.State.ExitCode}}",
                                 name).stdout.split()
            if code[0] == "exited":
                return int(code[1]), podman.podman("logs", name).stdout
            if wait_for in logs:
                return None, logs
            assert time.monotonic() < deadline, f"neither {wait_for!r} nor an exit:\n{logs}"
            time.sleep(0.2)
    finally:
        podman.podman("rm", "--force", "--time", "0", name, check=False)


def test_memlock_of_the_formula_is_enough(image, deployment, container, configmap):
    """At the computed need every ring registers its memory (no fallback warning)."""
    env = {k: configmap["data"][k] for k in ("MC_SHARDS", "MC_IO_MEMORY_BYTES")}
    env["MC_SHARDS"] = str(min(int(env["MC_SHARDS"]), len(os.sched_getaffinity(0))))
    need = executors_memlock(env)
    assert need <= podman.MEMLOCK_BYTES
    code, logs = run_dev_image(image, deployment, container, configmap, need,
                               "Meeting Controller ready")
    assert code is None, f"exited {code}:\n{logs}"
    assert "registering buffers" not in logs, logs
    REPORT["memlock_need"] = need


def test_memlock_too_low_names_the_cause(image, deployment, container, configmap):
    start = time.monotonic()
    code, logs = run_dev_image(image, deployment, container, configmap, 256 * 1024,
                               "Meeting Controller ready")
    assert code == 1, f"exit {code} with 256 KiB of RLIMIT_MEMLOCK:\n{logs}"
    assert time.monotonic() - start < 30
    assert "panicked" not in logs, logs
    errors = [json.loads(line) for line in logs.splitlines()
              if line.startswith("{") and '"ERROR"' in line]
    assert len(errors) == 1, f"expected one error line:\n{logs}"
    assert errors[0]["message"].startswith("Actor system failed to initialize")
    assert "RLIMIT_MEMLOCK is too low" in errors[0]["error"], errors[0]
    REPORT["memlock_error"] = errors[0]["error"]


def test_io_uring_refused_by_seccomp_names_the_cause(image, deployment, container, configmap,
                                                     workdir):
    """A node whose seccomp profile lacks the io_uring allowance (as RuntimeDefault on
    Docker >= 25 and containerd >= 2.0): one clear error, exit 1, no panic."""
    profile = json.loads(SECCOMP_PROFILE.read_text())
    profile["syscalls"].append({"names": IO_URING_CALLS, "action": "SCMP_ACT_ERRNO",
                                "errnoRet": 1})
    path = workdir / "no-io-uring" / SECCOMP_PROFILE.name
    path.parent.mkdir()
    path.write_text(json.dumps(profile))
    keys = podman.make_keys(workdir / "no-io-uring")
    ports = free_ports()
    name = f"meeting-controller-test-{os.getpid()}-no-io-uring"
    env = container_env(deployment, container, configmap, keys, name, "10.88.0.10",
                        mcbin.free_port(), ports)
    try:
        create_container(name, image["ref"], deployment, container, env, ports, keys, path, [])
        start = time.monotonic()
        r = podman.podman("start", "--attach", name, timeout=60, check=False)
        elapsed = time.monotonic() - start
        out = r.stdout + r.stderr
        state = podman.podman("inspect", "--format", "{{.State.ExitCode}}", name).stdout.strip()
    finally:
        podman.podman("rm", "--force", "--time", "0", name, check=False)
    assert state == "1", f"exit code {state}:\n{out}"
    assert elapsed < 30, f"took {elapsed:.1f}s to fail"
    assert "panicked" not in out, out
    errors = [json.loads(line) for line in out.splitlines()
              if line.startswith("{") and '"ERROR"' in line]
    assert len(errors) == 1, f"expected one error line:\n{out}"
    (error,) = errors
    # Runbook "Actor System Initialization Failures" names this message.
    assert error["message"] == "Actor system failed to initialize"
    assert "io_uring_setup refused with EPERM" in error["error"]
    assert "seccomp" in error["error"] and "io_uring in containers" in error["error"]
    REPORT["io_uring_error"] = error["error"]


def test_report(image, capsys):
    """Prints the image's size and the build times (not a check)."""
    size = image["info"]["Size"]
    base = image["base_info"]["Size"]
    lines = [
        f"image {image['ref']}: {size / 1e6:.1f} MB "
        f"(base {base / 1e6:.1f} MB, mc-service {image['binary_bytes'] / 1e6:.1f} MB, "
        f"curl + CA certificates + user {(size - base - image['binary_bytes']) / 1e6:.1f} MB)",
        "base: " + ("cached tarball" if REPORT.get("base_cached")
                    else f"mmdebstrap {REPORT.get('base_secs', 0):.0f} s")
        + f", import {REPORT.get('import_secs', 0):.0f} s; image build "
        f"{REPORT.get('build_secs', 0):.0f} s",
    ]
    if "drain_secs" in REPORT:
        lines.append(f"SIGTERM to exit with a live meeting: {REPORT['drain_secs']:.1f} s")
    if "memlock_need" in REPORT:
        lines.append(f"RLIMIT_MEMLOCK needed (ConfigMap values): {REPORT['memlock_need'] >> 10} KiB")
    if "memlock_error" in REPORT:
        lines.append(f"with 256 KiB of RLIMIT_MEMLOCK: {REPORT['memlock_error']}")
    if "io_uring_error" in REPORT:
        lines.append(f"without io_uring in seccomp: {REPORT['io_uring_error']}")
    with capsys.disabled():
        print("\n" + "\n".join(f"[container] {line}" for line in lines))
