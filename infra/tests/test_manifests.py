"""kubectl-style field checks of the meeting-controller manifests (docs/runbook.md
"Deployment Steps", "Resource Limits", "Kubernetes Secrets/ConfigMap")."""

import json
import pathlib
import re
import subprocess

from conftest import INFRA, MC_DIR, REPO, load_all, load_yaml


def port_number(container, port):
    if isinstance(port, int):
        return port
    (p,) = [p for p in container["ports"] if p.get("name") == port]
    return p["containerPort"]


def test_runbook_paths_exist():
    for p in ["infra/services/meeting-controller/deployment.yaml",
              "infra/docker/prometheus/rules/mc-alerts.yaml",
              "infra/grafana/dashboards/mc-overview.json", "infra/grafana/dashboards/mc-slos.json",
              "skaffold.yaml", "Dockerfile", ".dockerignore", "tuning.md"]:
        assert (REPO / p).is_file(), p


def test_every_object_in_dark_tower(manifests):
    for kind, docs in manifests.items():
        for d in docs:
            if kind == "Namespace":
                assert d["metadata"]["name"] == "dark-tower"
            elif kind != "Kustomization":
                assert d["metadata"].get("namespace") == "dark-tower", (kind, d["metadata"]["name"])


def test_deployment_identity(deployment, container):
    assert deployment["metadata"]["name"] == "meeting-controller"
    assert deployment["metadata"]["labels"]["app"] == "meeting-controller"
    assert deployment["spec"]["selector"]["matchLabels"] == {"app": "meeting-controller"}
    assert deployment["spec"]["template"]["metadata"]["labels"]["app"] == "meeting-controller"
    assert deployment["spec"]["replicas"] >= 2
    # Runbook Option B edits exactly this tag.
    assert container["image"] == "mc-service:latest"


def test_rolling_update(deployment):
    s = deployment["spec"]["strategy"]
    assert s["type"] == "RollingUpdate"
    assert s["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}


def test_probes(container):
    for probe, path in (("livenessProbe", "/health"), ("readinessProbe", "/ready")):
        get = container[probe]["httpGet"]
        assert get["path"] == path and port_number(container, get["port"]) == 8080


def test_resources_exactly_as_runbook(container):
    assert container["resources"] == {
        "requests": {"cpu": "500m", "memory": "512Mi"},
        "limits": {"cpu": "2000m", "memory": "1Gi"},
    }


def test_shards_match_cpu_limit(container, configmap):
    # tuning.md "Shards and CPUs": in a Burstable pod the affinity mask is the whole node,
    # so the shard count must be pinned to the CPU quota.
    limit = container["resources"]["limits"]["cpu"]
    cpus = int(limit[:-1]) / 1000 if limit.endswith("m") else float(limit)
    assert int(configmap["data"]["MC_SHARDS"]) == int(cpus)


def test_io_memory_fits_default_memlock(configmap):
    # 3 rings per executor, one executor per shard plus the control plane's; current
    # runtimes give 8 MiB of RLIMIT_MEMLOCK (tuning.md "memlock"), the rings need some too.
    executors = int(configmap["data"]["MC_SHARDS"]) + 1
    need = executors * 3 * int(configmap["data"]["MC_IO_MEMORY_BYTES"])
    assert 64 * 1024 <= int(configmap["data"]["MC_IO_MEMORY_BYTES"]) and need <= 4 * 1024 * 1024


def test_termination_grace_covers_drain(deployment, configmap):
    drain = int(configmap["data"]["MC_DRAIN_TIMEOUT_SECS"])
    grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    # Worst case: the whole drain, up to 3 s for an import in flight, up to 3 s to close
    # sessions, up to 4 s to deregister
    # (docs/runbook.md "Draining and Shutdown"); 90 s is the longest a pod may take.
    assert drain + 15 <= grace <= 90, (drain, grace)


def test_env_sources(container):
    assert {"configMapRef": {"name": "mc-service-config"}} in container["envFrom"]
    env = {e["name"]: e for e in container["env"]}
    for key in ("TLS_CERT", "TLS_KEY", "MC_BINDING_TOKEN_SECRET"):
        assert env[key]["valueFrom"]["secretKeyRef"] == {"name": "mc-service-secrets", "key": key}
    assert env["POD_IP"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert env["MC_ID"]["value"] == "mc-$(POD_NAME)"
    assert env["NODE_IP"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.hostIP"
    names = list(env)
    # Kubernetes expands $(VAR) only from variables defined earlier in the list.
    assert names.index("POD_NAME") < names.index("MC_ID")
    assert names.index("NODE_IP") < names.index("MC_ADVERTISE_WEBTRANSPORT")
    # No secret value is written into the manifest.
    for e in container["env"]:
        assert not re.search(r"SECRET|KEY|TOKEN|PASSWORD", e["name"]) or "valueFrom" in e


def test_ports_and_exposure(container, manifests):
    ports = {(p["containerPort"], p["protocol"]): p for p in container["ports"]}
    assert ports[(4433, "UDP")]["hostPort"] == 4433
    assert ports[(8080, "TCP")]["name"] == "http"
    (svc,) = manifests["Service"]
    assert svc["metadata"]["name"] == "meeting-controller"
    assert svc["spec"]["selector"] == {"app": "meeting-controller"}
    assert {(p["port"], p["protocol"]) for p in svc["spec"]["ports"]} == {(4433, "UDP"), (8080, "TCP")}


def test_security_context(deployment, container):
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["securityContext"]["seccompProfile"] == {
        "type": "Localhost", "localhostProfile": "profiles/mc-service.json"}
    sc = container["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert not sc["capabilities"].get("add")


def test_anti_affinity_across_nodes(deployment):
    terms = deployment["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"]
    assert any(t["topologyKey"] == "kubernetes.io/hostname"
               and t["labelSelector"]["matchLabels"] == {"app": "meeting-controller"} for t in terms)


def test_scrape_annotations_match_prometheus_config(deployment):
    ann = deployment["spec"]["template"]["metadata"]["annotations"]
    assert ann["prometheus.io/scrape"] == "true" and ann["prometheus.io/port"] == "8080"
    assert ann["prometheus.io/path"] == "/metrics"
    cfg = load_yaml(INFRA / "docker" / "prometheus" / "prometheus.yml")
    (job,) = [j for j in cfg["scrape_configs"] if j["job_name"] == "meeting-controller"]
    keeps = {tuple(r["source_labels"]): r["regex"] for r in job["relabel_configs"] if r.get("action") == "keep"}
    assert keeps[("__meta_kubernetes_pod_label_app",)] == "meeting-controller"
    targets = {r.get("target_label") for r in job["relabel_configs"]}
    assert {"namespace", "pod"} <= targets


def test_pdb(manifests):
    (pdb,) = manifests["PodDisruptionBudget"]
    assert pdb["spec"]["selector"]["matchLabels"] == {"app": "meeting-controller"}
    assert pdb["spec"].get("maxUnavailable") == 1


def test_networkpolicy(manifests):
    (np,) = manifests["NetworkPolicy"]
    spec = np["spec"]
    assert spec["podSelector"]["matchLabels"] == {"app": "meeting-controller"}
    assert set(spec["policyTypes"]) == {"Ingress", "Egress"}
    udp = [r for r in spec["ingress"] if {"protocol": "UDP", "port": 4433} in r.get("ports", [])]
    assert udp and all("from" not in r for r in udp), "UDP 4433 must be open to anywhere"
    admin = [r for r in spec["ingress"] if {"protocol": "TCP", "port": 8080} in r.get("ports", [])]
    assert admin and all(r.get("from") for r in admin), "8080 must be restricted"
    assert any(f.get("podSelector", {}).get("matchLabels", {}).get("app.kubernetes.io/name") == "prometheus"
               for r in admin for f in r["from"])
    gc = [r for r in spec["egress"]
          if any(t.get("podSelector", {}).get("matchLabels") == {"app": "global-controller"} for t in r["to"])]
    assert gc and {"protocol": "TCP", "port": 8080} in gc[0]["ports"]
    # Live migration: a draining MC POSTs the import to another MC's admin port.
    mc = {"app": "meeting-controller"}
    assert any(f.get("podSelector", {}).get("matchLabels") == mc for r in admin for f in r["from"])
    peers = [r for r in spec["egress"]
             if any(t.get("podSelector", {}).get("matchLabels") == mc for t in r["to"])]
    assert peers and {"protocol": "TCP", "port": 8080} in peers[0]["ports"]
    dns_ports = [p for r in spec["egress"] for p in r["ports"] if p["port"] == 53]
    assert {p["protocol"] for p in dns_ports} == {"UDP", "TCP"}


def test_secret_example_has_no_key_material():
    text = (MC_DIR / "secret.example.yaml").read_text()
    assert "BEGIN" not in text and "PRIVATE KEY-----" not in text
    (secret,) = load_all(MC_DIR / "secret.example.yaml")
    assert secret["metadata"]["name"] == "mc-service-secrets"
    for v in secret["stringData"].values():
        assert v.startswith("REPLACE_")


def test_kustomization_lists_every_manifest_but_the_secret_template():
    k = load_yaml(MC_DIR / "kustomization.yaml")
    assert k["namespace"] == "dark-tower"
    files = {p.name for p in MC_DIR.glob("*.yaml")} - {"kustomization.yaml", "secret.example.yaml"}
    assert set(k["resources"]) == files
    (gen,) = k["configMapGenerator"]
    assert gen["files"] == ["mc-service.json=seccomp/mc-service.json"]


def test_kustomize_renders(tmp_path):
    r = subprocess.run(["kubectl", "kustomize", str(MC_DIR)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    docs = [d for d in __import__("yaml").safe_load_all(r.stdout) if d]
    kinds = sorted(d["kind"] for d in docs)
    assert kinds.count("Deployment") == 1 and "DaemonSet" in kinds and "Secret" not in kinds
    (ds,) = [d for d in docs if d["kind"] == "DaemonSet"]
    cms = {d["metadata"]["name"] for d in docs if d["kind"] == "ConfigMap"}
    vol = [v for v in ds["spec"]["template"]["spec"]["volumes"] if "configMap" in v][0]
    assert vol["configMap"]["name"] in cms  # the generated, hash-suffixed profile


def test_seccomp_profile_allows_io_uring():
    prof = json.loads((MC_DIR / "seccomp" / "mc-service.json").read_text())
    assert prof["defaultAction"] == "SCMP_ACT_ALLOW"
    denied = {n for r in prof["syscalls"] if r["action"] != "SCMP_ACT_ALLOW" and not r.get("args")
              for n in r["names"]}
    assert not denied & {"io_uring_setup", "io_uring_enter", "io_uring_register"}
    for must in ("ptrace", "mount", "unshare", "setns", "bpf", "kexec_load", "init_module", "keyctl"):
        assert must in denied
    header = pathlib.Path("/usr/include/x86_64-linux-gnu/asm/unistd_64.h")
    names = {n for r in prof["syscalls"] for n in r["names"]}
    if header.is_file():
        known = set(re.findall(r"#define __NR_(\w+)\s+\d+", header.read_text()))
        assert names <= known, f"unknown syscalls: {names - known}"
    assert all(re.fullmatch(r"[a-z0-9_]+", n) for n in names)


def test_seccomp_installer_targets_kubelet_dir(manifests):
    (ds,) = manifests["DaemonSet"]
    spec = ds["spec"]["template"]["spec"]
    (hp,) = [v for v in spec["volumes"] if "hostPath" in v]
    assert hp["hostPath"]["path"] == "/var/lib/kubelet/seccomp"
    script = " ".join(spec["initContainers"][0]["command"])
    assert "profiles/mc-service.json" in script


def test_skaffold_profile():
    docs = load_all(REPO / "skaffold.yaml")
    (cfg,) = docs
    (prof,) = [p for p in cfg["profiles"] if p["name"] == "meeting-controller"]
    build = prof.get("build", cfg.get("build"))
    (art,) = build["artifacts"]
    assert art["image"] == "mc-service" and art["docker"]["dockerfile"] == "Dockerfile"
    manifests = prof.get("manifests", cfg.get("manifests"))
    assert manifests["kustomize"]["paths"] == ["infra/services/meeting-controller"]
