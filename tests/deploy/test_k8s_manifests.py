"""deploy/k8s/: every manifest against the Kubernetes schemas, and against the code.

``kubernetes-validate`` ships the OpenAPI-derived JSON schemas of each Kubernetes
release, so this runs offline. Beyond the schemas: probe paths are routes the apps
really serve, every ``HYBRIDREC_*`` name is a field of the settings the container
reads, ports agree from container to probe to Service to the URLs other services
use, and the HPAs, PDBs and Services select the Deployments they are meant for.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import kubernetes_validate
import pytest
import yaml
from fastapi import FastAPI
from pydantic_settings import BaseSettings

from services.gateway.app import create_app as gateway_app
from services.gateway.settings import GatewaySettings
from services.ranking.app import create_app as ranking_app
from services.ranking.settings import RankingSettings
from services.retrieval.app import create_app as retrieval_app
from services.retrieval.settings import RetrievalSettings

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
SERVICES = ("gateway", "retrieval", "ranking")
SETTINGS: dict[str, type[BaseSettings]] = {
    "gateway": GatewaySettings,
    "retrieval": RetrievalSettings,
    "ranking": RankingSettings,
}
CLI_ONLY_VARS = {"HYBRIDREC_DATA"}  # read by `hybridrec train`, not by a service
# The oldest Kubernetes release still in common support here, and the newest shipped.
K8S_VERSIONS = ("1.29.0", kubernetes_validate.latest_version())


def _load() -> list[tuple[str, dict[str, Any]]]:
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        docs += [(path.name, d) for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


DOCS = _load()


def _one(kind: str, name: str) -> dict[str, Any]:
    found = [d for _, d in DOCS if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def _container(kind: str, name: str) -> dict[str, Any]:
    containers = _one(kind, name)["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def _env(container: dict[str, Any]) -> dict[str, str | None]:
    """Literal env values (None for values from a Secret) plus the ConfigMap's keys."""
    env: dict[str, str | None] = {}
    for source in container.get("envFrom", []):
        cm = _one("ConfigMap", source["configMapRef"]["name"])
        env.update(cm["data"])
    for item in container.get("env", []):
        env[item["name"]] = item.get("value")
    return env


def _ports(container: dict[str, Any]) -> dict[str, int]:
    return {p["name"]: p["containerPort"] for p in container["ports"]}


def _matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def test_the_manifests_hold_what_the_deployment_needs() -> None:
    kinds = sorted((d["kind"], d["metadata"]["name"]) for _, d in DOCS)
    for name in SERVICES:
        for kind in ("Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget"):
            assert (kind, name) in kinds
    assert ("Job", "hybridrec-train") in kinds
    assert ("ConfigMap", "hybridrec-config") in kinds
    assert ("PersistentVolumeClaim", "hybridrec-artifacts") in kinds
    assert ("StatefulSet", "redis") in kinds and ("Service", "redis") in kinds


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize(("filename", "doc"), DOCS, ids=[f"{f}:{d['kind']}" for f, d in DOCS])
def test_manifest_is_valid_for_kubernetes(filename: str, doc: dict[str, Any], version: str) -> None:
    # strict: an unknown field (a typo, a field at the wrong level) is an error too
    kubernetes_validate.validate(doc, version, strict=True)


def test_the_validator_catches_a_mistake() -> None:
    bad = yaml.safe_load(yaml.safe_dump(_one("Deployment", "gateway")))
    bad["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["pathh"] = "/x"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, K8S_VERSIONS[-1], strict=True)
    bad = yaml.safe_load(yaml.safe_dump(_one("Service", "gateway")))
    bad["spec"]["ports"][0]["port"] = "eight thousand"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, K8S_VERSIONS[-1], strict=True)


def test_kustomization_lists_every_manifest() -> None:
    kust = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    files = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert sorted(kust["resources"]) == sorted(files)


@pytest.mark.parametrize("name", SERVICES)
def test_probes_use_paths_the_app_serves_on_its_port(name: str) -> None:
    factories: dict[str, Callable[[], FastAPI]] = {
        "gateway": gateway_app,
        "retrieval": retrieval_app,
        "ranking": ranking_app,
    }
    paths = set(factories[name]().openapi()["paths"])
    c = _container("Deployment", name)
    probes = {k: c[k]["httpGet"] for k in ("startupProbe", "readinessProbe", "livenessProbe")}
    assert probes["readinessProbe"]["path"] == "/health/ready"
    assert probes["livenessProbe"]["path"] == "/health/live"
    port = int(str(_env(c)["HYBRIDREC_PORT"]))
    for probe in probes.values():
        assert probe["path"] in paths, f"{name} serves no {probe['path']}"
        assert _ports(c)[probe["port"]] == port
    assert c["command"] == ["hybridrec", "serve", name, "--port", str(port)]
    assert port == SETTINGS[name].model_fields["port"].default


def test_configmap_keys_are_settings_some_service_reads() -> None:
    data = _one("ConfigMap", "hybridrec-config")["data"]
    read = {f"HYBRIDREC_{f.upper()}" for s in SETTINGS.values() for f in s.model_fields}
    unread = set(data) - read
    assert not unread, f"the ConfigMap sets variables no service reads: {unread}"
    assert all(isinstance(v, str) for v in data.values())  # ConfigMap values must be strings


@pytest.mark.parametrize("name", SERVICES)
def test_env_names_are_real_settings_and_values_parse(name: str) -> None:
    container = _container("Deployment", name)
    env = _env(container)
    fields = SETTINGS[name].model_fields
    own = {i["name"] for i in container["env"]}
    unknown = {k for k in own if k.removeprefix("HYBRIDREC_").lower() not in fields}
    assert not unknown, f"{name} sets variables its settings do not read: {unknown}"
    values = {
        k.removeprefix("HYBRIDREC_").lower(): v
        for k, v in env.items()
        if v is not None and k.removeprefix("HYBRIDREC_").lower() in fields
    }
    parsed = SETTINGS[name](**values)  # type: ignore[arg-type]
    assert parsed.model_dump()["artifacts"] == "/artifacts"


def test_services_select_their_deployments_and_target_named_ports() -> None:
    for name in (*SERVICES, "redis"):
        svc = _one("Service", name)
        kind = "StatefulSet" if name == "redis" else "Deployment"
        workload = _one(kind, name)
        labels = workload["spec"]["template"]["metadata"]["labels"]
        assert _matches(svc["spec"]["selector"], labels)
        assert _matches(workload["spec"]["selector"]["matchLabels"], labels)
        others = [
            d for _, d in DOCS
            if d["kind"] in ("Deployment", "StatefulSet") and d is not workload
        ]  # fmt: skip
        assert not any(
            _matches(svc["spec"]["selector"], d["spec"]["template"]["metadata"]["labels"])
            for d in others
        ), f"Service {name} also selects another workload"
        container = _container(kind, name)
        for port in svc["spec"]["ports"]:
            assert port["targetPort"] in _ports(container)
            assert port["port"] == _ports(container)[port["targetPort"]]


def test_urls_between_services_match_the_services() -> None:
    env = _env(_container("Deployment", "gateway"))
    for dep in ("retrieval", "ranking"):
        url = urlparse(str(env[f"HYBRIDREC_{dep.upper()}_URL"]))
        svc = _one("Service", url.hostname or "")
        assert url.hostname == dep
        assert url.port in [p["port"] for p in svc["spec"]["ports"]]
        # headless: the gateway resolves the name to every ready pod and balances itself,
        # connecting to the pods' own port (so the Service port must be the container's)
        assert svc["spec"]["clusterIP"] == "None"
        assert url.port == _ports(_container("Deployment", dep))["http"]
    redis_url = urlparse(str(env["HYBRIDREC_REDIS_URL"]))
    assert redis_url.hostname == "redis"
    assert redis_url.port in [p["port"] for p in _one("Service", "redis")["spec"]["ports"]]
    redis = _container("StatefulSet", "redis")
    assert "--appendonly" in redis["command"] and "always" in redis["command"]


def test_hpas_and_pdbs_target_the_deployments() -> None:
    for name in SERVICES:
        dep = _one("Deployment", name)
        hpa, pdb = _one("HorizontalPodAutoscaler", name), _one("PodDisruptionBudget", name)
        ref = hpa["spec"]["scaleTargetRef"]
        assert (ref["kind"], ref["name"], ref["apiVersion"]) == ("Deployment", name, "apps/v1")
        assert hpa["spec"]["minReplicas"] == dep["spec"]["replicas"] >= 2
        assert hpa["spec"]["maxReplicas"] > hpa["spec"]["minReplicas"]
        # CPU utilisation needs a CPU request to be measured against
        assert _container("Deployment", name)["resources"]["requests"]["cpu"]
        labels = dep["spec"]["template"]["metadata"]["labels"]
        assert _matches(pdb["spec"]["selector"]["matchLabels"], labels)
        # the budget leaves room to drain a node: fewer must stay up than run
        assert 1 <= pdb["spec"]["minAvailable"] < hpa["spec"]["minReplicas"]


def test_bundle_volume_is_shared_written_by_the_job_read_by_the_services() -> None:
    claim = _one("PersistentVolumeClaim", "hybridrec-artifacts")
    assert "ReadWriteMany" in claim["spec"]["accessModes"]
    job = _one("Job", "hybridrec-train")
    spec = job["spec"]["template"]["spec"]
    assert spec["restartPolicy"] == "Never"
    train = spec["containers"][0]
    assert train["command"][:2] == ["hybridrec", "train"]
    job_env = {e["name"]: e["value"] for e in train["env"]}
    # k8s expands $(VAR) only from the container's own env
    for var in re.findall(r"\$\(([A-Z_]+)\)", " ".join(train["command"])):
        assert var in job_env
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert f"HYBRIDREC_DATA={job_env['HYBRIDREC_DATA']}" in dockerfile  # the bundled data
    mounts = {m["name"]: m for m in train["volumeMounts"]}
    vols = {v["name"]: v for v in spec["volumes"]}
    assert vols["artifacts"]["persistentVolumeClaim"]["claimName"] == "hybridrec-artifacts"
    assert mounts["artifacts"]["mountPath"] == job_env["HYBRIDREC_ARTIFACTS"]
    assert not mounts["artifacts"].get("readOnly")
    for name in SERVICES:
        pod = _one("Deployment", name)["spec"]["template"]["spec"]
        c = pod["containers"][0]
        env = _env(c)
        mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
        vols = {v["name"]: v for v in pod["volumes"]}
        art = mounts[str(env["HYBRIDREC_ARTIFACTS"])]
        assert art["readOnly"] is True
        assert vols[art["name"]]["persistentVolumeClaim"]["claimName"] == "hybridrec-artifacts"
        assert str(env["HYBRIDREC_STATE_DIR"]) in mounts
        init = pod["initContainers"][0]
        assert "/artifacts/latest" in " ".join(init["command"])


def test_pods_run_as_the_images_non_root_user() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    uid = int(re.search(r"useradd .*--uid (\d+)", dockerfile).group(1))  # type: ignore[union-attr]
    for kind, name in [*(("Deployment", s) for s in SERVICES), ("Job", "hybridrec-train")]:
        spec = _one(kind, name)["spec"]["template"]["spec"]
        assert spec["securityContext"]["runAsUser"] == uid
        assert spec["securityContext"]["runAsNonRoot"] is True
        for c in spec["containers"] + spec.get("initContainers", []):
            assert c["image"] == "hybridrec:latest"
            assert c["securityContext"]["allowPrivilegeEscalation"] is False
