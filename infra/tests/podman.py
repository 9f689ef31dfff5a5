"""Building and running the mc-service image with podman, without any image registry.

- The base, `debian:<release>-slim`, is made locally by mmdebstrap from Debian's package
  mirror, shaped like Debian's official slim image (minbase, merged /usr, no docs, man
  pages or locales, and the official image's apt settings that keep package caches out of
  layers). The tarball is cached in target/container/ and rebuilt after BASE_MAX_AGE.
- The image is the production Dockerfile's runtime stage, byte for byte, after a
  stand-in `build` stage holding the release binary built on the host: the real build
  stage starts `FROM rust:…`, which needs a registry.
- `pod_run_args` and `pod_env` turn the Deployment, the ConfigMap and a Secret into
  `podman create` arguments (user, read-only root, /tmp, capabilities, seccomp,
  resources, rlimits, ports) and the container's environment.

Podman runs with runc and the cgroupfs cgroup manager: crun refuses the hybrid cgroup
hierarchy some machines have, and the systemd manager needs systemd as init; neither
choice changes what the container sees.
"""

import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
import time

import mcbin

REPO = mcbin.REPO
CACHE = REPO / "target" / "container"
# A cached base is rebuilt after a week: it carries Debian's security updates.
BASE_MAX_AGE = 7 * 24 * 3600
DEBIAN_MIRROR = os.environ.get("MC_IMAGE_DEBIAN_MIRROR", "http://deb.debian.org/debian")
DEBIAN_SECURITY_MIRROR = os.environ.get(
    "MC_IMAGE_DEBIAN_SECURITY_MIRROR", "http://deb.debian.org/debian-security")
# RLIMIT_MEMLOCK given to the container: the default of current container runtimes
# (Linux >= 5.16 and systemd >= 253 both use 8 MiB; tuning.md "memlock"). Kubernetes
# cannot set it per pod, so this is what an MC pod gets on a current node.
MEMLOCK_BYTES = 8 * 1024 * 1024

# The apt settings of Debian's official images (debuerreotype): without them every
# `apt-get install` layer keeps the downloaded .debs and apt's binary caches.
_OFFICIAL_IMAGE_APT = [
    'DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb '
    '/var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; }',
    'Dir::Cache::pkgcache ""',
    'Dir::Cache::srcpkgcache ""',
    'Acquire::GzipIndexes "true"',
    'Acquire::Languages "none"',
    'Apt::AutoRemove::SuggestsImportant "false"',
]
_SLIM_EXCLUDES = [
    "path-exclude=/usr/share/doc/*",
    "path-include=/usr/share/doc/*/copyright",
    "path-exclude=/usr/share/man/*",
    "path-exclude=/usr/share/info/*",
    "path-exclude=/usr/share/locale/*",
]


def require_tool(name):
    path = shutil.which(name)
    assert path, (f"{name} is not installed: infra/tests/run.sh installs podman, runc and "
                  "mmdebstrap (Debian packages); the container tests never skip")
    return path


def base_cmd():
    """podman with the runtime and cgroup manager this test uses (module docs)."""
    return [require_tool("podman"), "--runtime", require_tool("runc"),
            "--cgroup-manager=cgroupfs"]


def podman(*args, timeout=120, check=True, env=None, input=None):
    """Run one podman command; a non-zero exit fails with podman's own output."""
    cmd = [*base_cmd(), *map(str, args)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env,
                       input=input)
    if check:
        assert r.returncode == 0, (
            f"podman {' '.join(cmd[4:])} exited {r.returncode}:\n{r.stdout[-4000:]}\n{r.stderr[-4000:]}")
    return r


# ---------------------------------------------------------------------------- base


def base_tarball(release):
    """Path of the cached `debian:<release>-slim` root tarball, building it when missing
    or stale; returns (path, seconds spent building, 0.0 when the cache was used)."""
    out = CACHE / f"debian-{release}-slim.tar"
    if out.is_file() and time.time() - out.stat().st_mtime < BASE_MAX_AGE:
        return out, 0.0
    mmdebstrap = require_tool("mmdebstrap")
    CACHE.mkdir(parents=True, exist_ok=True)
    partial = out.with_suffix(".tar.partial")
    cmd = [mmdebstrap, "--variant=minbase", "--format=tar", "--quiet",
           # Merged /usr without the usrmerge package (which would pull in perl).
           "--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr",
           *(f"--dpkgopt={o}" for o in _SLIM_EXCLUDES),
           *(f"--aptopt={o}" for o in _OFFICIAL_IMAGE_APT),
           release, str(partial),
           f"deb {DEBIAN_MIRROR} {release} main",
           f"deb {DEBIAN_MIRROR} {release}-updates main",
           f"deb {DEBIAN_SECURITY_MIRROR} {release}-security main"]
    start = time.monotonic()
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, f"mmdebstrap failed ({DEBIAN_MIRROR}):\n{r.stdout}\n{r.stderr[-4000:]}"
    partial.replace(out)
    return out, time.monotonic() - start


# --------------------------------------------------------------------------- image


def dockerfile_arg(dockerfile, name):
    m = re.search(rf"^ARG\s+{name}=(\S+)\s*$", dockerfile, re.M)
    assert m, f"Dockerfile has no `ARG {name}=<default>`"
    return m.group(1)


def runtime_stage(dockerfile):
    """The runtime stage's text, from its FROM line to the end of the Dockerfile."""
    m = re.search(r"^FROM\s+\S+\s+AS\s+runtime\s*$", dockerfile, re.M | re.I)
    assert m, "Dockerfile has no `FROM … AS runtime` stage"
    stage = dockerfile[m.start():]
    assert not re.search(r"^FROM\s", stage[1:], re.M), "the runtime stage must be the last one"
    return stage


def stand_in_containerfile(dockerfile):
    """The production runtime stage, unchanged, after a stand-in for the stage it copies
    the binary from; the stand-in takes `mc-service` from the build context."""
    stage = runtime_stage(dockerfile)
    copies = re.findall(r"^COPY\s+--from=(\S+)\s+(\S+)\s+\S+\s*$", stage, re.M)
    assert len(copies) == 1, f"expected one COPY --from in the runtime stage, got {copies}"
    (source_stage, source_path), = copies
    first_from = re.search(r"^FROM\s", dockerfile, re.M).start()
    global_args = re.findall(r"^ARG\s.*$", dockerfile[:first_from], re.M)
    return ("# Generated by infra/tests/podman.py: the Dockerfile's global ARGs, a stand-in\n"
            f"# for its `{source_stage}` stage, then its runtime stage unchanged.\n"
            + "\n".join(global_args) + "\n\n"
            f"FROM scratch AS {source_stage}\n"
            f"COPY mc-service {source_path}\n\n"
            + stage)


def build_image(dockerfile, binary, workdir, tag, build_args):
    """Build `tag` from the runtime stage with `binary` in it; returns seconds spent."""
    context = workdir / "context"
    context.mkdir()
    staged = context / "mc-service"
    shutil.copyfile(binary, staged)
    os.chmod(staged, 0o555)  # what `install -m 0555` gives the real build stage
    containerfile = workdir / "Containerfile"
    containerfile.write_text(stand_in_containerfile(dockerfile))
    args = [a for k, v in build_args.items() for a in ("--build-arg", f"{k}={v}")]
    start = time.monotonic()
    # --pull=never: every FROM must resolve to a local image (scratch, the imported base).
    podman("build", "--pull=never", "--layers=false", "--quiet", "-f", containerfile,
           *args, "-t", tag, context, timeout=600)
    return time.monotonic() - start


def inspect_image(ref):
    (info,) = json.loads(podman("image", "inspect", ref).stdout)
    return info


# ------------------------------------------------------------------ the pod's shape


def _quantity_bytes(q):
    units = {"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "K": 10**3, "M": 10**6, "G": 10**9}
    m = re.fullmatch(r"(\d+)([KMG]i?)?", str(q))
    assert m, f"unsupported quantity {q!r}"
    return int(m.group(1)) * units.get(m.group(2) or "", 1)


def _cpus(q):
    q = str(q)
    return int(q[:-1]) / 1000 if q.endswith("m") else float(q)


def _expand(value, env):
    """Kubernetes' $(VAR) expansion: variables defined earlier; unknown ones stay."""
    return re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)",
                  lambda m: env.get(m.group(1), m.group(0)), value)


def pod_env(container, configmap, secrets, fields):
    """The container's environment as the kubelet builds it: envFrom the ConfigMap, then
    `env` in order (Secret keys, downward-API fields, literal values with $(VAR))."""
    env = {}
    for src in container.get("envFrom", []):
        ref = src["configMapRef"]["name"]
        assert ref == configmap["metadata"]["name"], f"envFrom an unknown ConfigMap {ref}"
        env.update(configmap["data"])
    for item in container.get("env", []):
        name = item["name"]
        if "value" in item:
            env[name] = _expand(item["value"], env)
            continue
        source = item["valueFrom"]
        if "secretKeyRef" in source:
            key = source["secretKeyRef"]["key"]
            assert key in secrets, f"the Deployment reads Secret key {key}, which the test does not provide"
            env[name] = secrets[key]
        elif "fieldRef" in source:
            path = source["fieldRef"]["fieldPath"]
            assert path in fields, f"the Deployment reads downward-API field {path}, which the test does not provide"
            env[name] = fields[path]
        else:
            raise AssertionError(f"env {name}: unsupported source {source}")
    return env


def rlimit_args():
    """Open files and processes: 1024 each. Podman's defaults (from its own limits) are
    refused by some sandboxes, and raising RLIMIT_NPROC near the hard limit is refused
    by others; 1024 works everywhere and is plenty: mc-service holds one UDP socket and
    a few rings per shard, at most MC_ADMIN_MAX_CONNECTIONS (64) admin connections, and
    a thread per shard plus a few (QUIC connections need no descriptor)."""
    return ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]


def pod_run_args(deployment, container, seccomp_profile, published, memlock=MEMLOCK_BYTES,
                 uid=None):
    """`podman create` options for the Deployment's security context, volumes, resources
    and ports. `published` maps "<containerPort>/<proto>" to a host port on 127.0.0.1;
    `uid` replaces the pod's runAsUser/runAsGroup when given."""
    pod = deployment["spec"]["template"]["spec"]
    psc, csc = pod.get("securityContext", {}), container.get("securityContext", {})
    args = []
    if uid is None:
        args += ["--user", f"{psc['runAsUser']}:{psc.get('runAsGroup', psc['runAsUser'])}"]
    else:
        args += ["--user", f"{uid}:{uid}"]
    if csc.get("readOnlyRootFilesystem"):
        # podman would otherwise add tmpfs on /tmp, /var/tmp and /run; a pod has none.
        args += ["--read-only", "--read-only-tmpfs=false"]
    caps = csc.get("capabilities", {})
    assert not caps.get("add"), "capabilities added: map them here"
    if "ALL" in caps.get("drop", []):
        args += ["--cap-drop=all"]
    if csc.get("allowPrivilegeEscalation") is False:
        args += ["--security-opt", "no-new-privileges"]
    assert not csc.get("privileged")
    seccomp = psc.get("seccompProfile") or csc.get("seccompProfile")
    assert seccomp["type"] == "Localhost", seccomp
    assert os.path.basename(seccomp["localhostProfile"]) == os.path.basename(seccomp_profile)
    args += ["--security-opt", f"seccomp={seccomp_profile}"]

    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    for mount in container.get("volumeMounts", []):
        vol = volumes[mount["name"]]
        assert "emptyDir" in vol, f"volume {mount['name']}: only emptyDir is mapped"
        size = _quantity_bytes(vol["emptyDir"].get("sizeLimit", "64Mi"))
        # An emptyDir is a fresh, world-writable directory; sizeLimit bounds it.
        args += ["--tmpfs", f"{mount['mountPath']}:rw,size={size},mode=0777,nosuid,nodev"]

    limits = container["resources"]["limits"]
    cpus = min(_cpus(limits["cpu"]), len(os.sched_getaffinity(0)))
    args += ["--cpus", str(cpus), "--memory", str(_quantity_bytes(limits["memory"]))]

    # RLIMIT_MEMLOCK as a current node gives it; the others as this machine allows.
    args += ["--ulimit", f"memlock={memlock}:{memlock}", *rlimit_args()]

    for port in container.get("ports", []):
        key = f"{port['containerPort']}/{port.get('protocol', 'TCP').lower()}"
        assert key in published, f"container port {key} is not published by the test"
        args += ["-p", f"127.0.0.1:{published[key]}:{key}"]
    args += ["--stop-timeout", str(pod.get("terminationGracePeriodSeconds", 30))]
    return args


# ----------------------------------------------------------------------- key material


def make_keys(directory, openssl="openssl"):
    """A TLS certificate for 127.0.0.1 (ECDSA P-256, 13 days: a WebTransport client
    may trust it by hash) and an Ed25519 join-token key with its JWKS. Returns a dict
    of paths and values."""
    openssl = require_tool(openssl)

    def run(*a):
        r = subprocess.run([openssl, *a], capture_output=True, timeout=60)
        assert r.returncode == 0, f"openssl {' '.join(a)}: {r.stderr.decode()}"
        return r.stdout

    cert, key = directory / "tls.crt", directory / "tls.key"
    run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", str(key), "-out", str(cert), "-days", "13", "-subj", "/CN=mc-image-test",
        "-addext", "subjectAltName=IP:127.0.0.1")
    cert_sha256 = hashlib.sha256(run("x509", "-in", str(cert), "-outform", "DER")).hexdigest()
    signing = directory / "signing-key.pem"
    run("genpkey", "-algorithm", "ed25519", "-out", str(signing))
    # An Ed25519 SubjectPublicKeyInfo ends with the 32-byte raw public key.
    public = run("pkey", "-in", str(signing), "-pubout", "-outform", "DER")[-32:]
    kid = "image-test-1"
    jwks = directory / "jwks.json"
    jwks.write_text(json.dumps({"keys": [{
        "kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig", "kid": kid,
        "x": base64.urlsafe_b64encode(public).rstrip(b"=").decode()}]}))
    for p in (cert, jwks):
        os.chmod(p, 0o644)
    return {
        "cert": cert, "key": key, "cert_sha256": cert_sha256, "signing_key": signing,
        "kid": kid, "jwks": jwks,
        "binding_secret": base64.b64encode(os.urandom(32)).decode(),
    }
