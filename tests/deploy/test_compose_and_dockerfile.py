"""Static checks of docker-compose.yml and the Dockerfile against the code's settings.

No Docker engine runs here, so the files are validated as data: every service,
port, volume and HYBRIDREC_* variable must agree with what the code reads.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml

from services.gateway.settings import GatewaySettings
from services.ranking.settings import RankingSettings
from services.retrieval.settings import RetrievalSettings

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = {"gateway": GatewaySettings, "retrieval": RetrievalSettings, "ranking": RankingSettings}
CLI_ONLY_VARS = {"HYBRIDREC_DATA"}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def _env(service: dict) -> dict[str, str]:
    """The service's environment as compose sets it with nothing exported (``${X:-d}`` -> d)."""
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    default = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*:-([^}]*)\}")
    return {k: default.sub(r"\1", str(v)) for k, v in env.items()}


def test_services_and_only_gateway_publishes(compose: dict) -> None:
    services = compose["services"]
    assert set(services) == {"redis", "trainer", "retrieval", "ranking", "gateway"}
    published = {name for name, svc in services.items() if svc.get("ports")}
    assert published == {"gateway"}
    assert services["gateway"]["ports"] == ["8000:8000"]


def test_redis_persists_with_append_only(compose: dict) -> None:
    redis = compose["services"]["redis"]
    cmd = " ".join(redis["command"])
    assert "--appendonly yes" in cmd
    assert any(v.endswith(":/data") for v in redis["volumes"])
    assert redis["healthcheck"]["test"][-1] == "ping"


@pytest.mark.parametrize("name", ["gateway", "retrieval", "ranking"])
def test_env_vars_are_real_settings(compose: dict, name: str) -> None:
    env = _env(compose["services"][name])
    fields = {f"HYBRIDREC_{f.upper()}" for f in SETTINGS[name].model_fields}
    unknown = {k for k in env if k.startswith("HYBRIDREC_")} - fields - CLI_ONLY_VARS
    assert not unknown, f"{name} sets variables its settings do not read: {unknown}"
    # The values parse with the service's own settings class.
    values = {
        k.removeprefix("HYBRIDREC_").lower(): v
        for k, v in env.items()
        if v and k.startswith("HYBRIDREC_") and k not in CLI_ONLY_VARS
    }
    parsed = SETTINGS[name](**values)
    assert parsed.port == int(env["HYBRIDREC_PORT"])


@pytest.mark.parametrize("name", ["gateway", "retrieval", "ranking"])
def test_healthchecks_and_commands_use_the_service_port(compose: dict, name: str) -> None:
    svc = compose["services"][name]
    port = _env(svc)["HYBRIDREC_PORT"]
    assert svc["command"][:3] == ["hybridrec", "serve", name]
    assert port in svc["command"]
    probe = " ".join(svc["healthcheck"]["test"])
    assert f"127.0.0.1:{port}/health/ready" in probe
    if name != "gateway":
        assert svc["expose"] == [port]


def test_gateway_urls_point_at_the_internal_services(compose: dict) -> None:
    services = compose["services"]
    env = _env(services["gateway"])
    for dep in ("retrieval", "ranking"):
        url = urlparse(env[f"HYBRIDREC_{dep.upper()}_URL"])
        assert url.hostname == dep
        assert str(url.port) == _env(services[dep])["HYBRIDREC_PORT"]


def test_start_order_is_health_gated(compose: dict) -> None:
    services = compose["services"]
    for name in ("retrieval", "ranking"):
        deps = services[name]["depends_on"]
        assert deps["trainer"]["condition"] == "service_completed_successfully"
        assert deps["redis"]["condition"] == "service_healthy"
    gw = services["gateway"]["depends_on"]
    assert all(gw[d]["condition"] == "service_healthy" for d in ("retrieval", "ranking", "redis"))
    assert services["trainer"]["restart"] == "no"
    assert "test -e /artifacts/latest" in " ".join(services["trainer"]["command"])


def test_volumes_are_declared_and_mounted(compose: dict) -> None:
    declared = set(compose["volumes"])
    for name, svc in compose["services"].items():
        for v in svc.get("volumes", []):
            source = v.split(":")[0]
            assert source in declared, f"{name} mounts undeclared volume {source}"
    for name in ("retrieval", "ranking", "gateway"):
        env = _env(compose["services"][name])
        mounts = {v.split(":")[1] for v in compose["services"][name]["volumes"]}
        assert env["HYBRIDREC_ARTIFACTS"] in mounts and env["HYBRIDREC_STATE_DIR"] in mounts


def test_dockerfile_is_slim_multistage_non_root_cpu_only() -> None:
    text = (ROOT / "Dockerfile").read_text()
    stages = re.split(r"^FROM ", text, flags=re.M)[1:]
    assert len(stages) == 2 and all(s.startswith("python:3.11-slim") for s in stages)
    final = stages[-1]
    assert "build-essential" not in final and "apt-get install" not in final
    assert re.search(r"^USER hybridrec$", final, flags=re.M)
    assert "torch==2.13.0" in text and "whl/cpu" in text
    assert "COPY data/ml-latest-small.zip" in final
    for var in re.findall(r"(HYBRIDREC_[A-Z_]+)=", final):
        assert var in CLI_ONLY_VARS or any(
            var.removeprefix("HYBRIDREC_").lower() in s.model_fields for s in SETTINGS.values()
        ), var
