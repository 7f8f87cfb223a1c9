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
from shared.serving.settings import ServiceSettings

ROOT = Path(__file__).resolve().parents[2]
SETTINGS: dict[str, type[ServiceSettings]] = {
    "gateway": GatewaySettings,
    "retrieval": RetrievalSettings,
    "ranking": RankingSettings,
}
CLI_ONLY_VARS = {"HYBRIDREC_DATA"}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


DEFAULT = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*:-([^}]*)\}")


def _resolve(value: object) -> str:
    """A compose value as compose reads it with nothing exported (``${X:-d}`` -> d)."""
    return DEFAULT.sub(r"\1", str(value))


def _env(service: dict) -> dict[str, str]:
    """The service's environment as compose sets it with nothing exported."""
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: _resolve(v) for k, v in env.items()}


def test_services_and_only_gateway_publishes(compose: dict) -> None:
    services = compose["services"]
    assert set(services) == {"redis", "trainer", "retrieval", "ranking", "gateway"}
    published = {name for name, svc in services.items() if svc.get("ports")}
    assert published == {"gateway"}
    assert [_resolve(p) for p in services["gateway"]["ports"]] == ["8000:8000"]
    # the host side can move (make compose-test publishes on a free loopback port)
    assert services["gateway"]["ports"] == ["${GATEWAY_PUBLISH:-8000}:8000"]


def test_redis_persists_with_append_only(compose: dict) -> None:
    redis = compose["services"]["redis"]
    cmd = " ".join(redis["command"])
    assert "--appendonly yes" in cmd
    assert any(v.endswith(":/data") for v in redis["volumes"])
    assert redis["healthcheck"]["test"][-1] == "ping"
    assert "--dir /data" in cmd  # where the volume is, whatever the image's workdir
    assert _resolve(redis["image"]) == "redis:7-alpine"  # REDIS_IMAGE overrides it


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
    parsed = SETTINGS[name](**values)  # type: ignore[arg-type]
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
    # One base for both stages: python:3.11-slim unless BASE_IMAGE names another
    # (make compose-test's debootstrap image where no registry is reachable).
    assert re.search(r"^ARG BASE_IMAGE=python:3\.11-slim$", text, flags=re.M)
    stages = re.split(r"^FROM ", text, flags=re.M)[1:]
    assert len(stages) == 2 and all(s.startswith("${BASE_IMAGE} AS ") for s in stages)
    final = stages[-1]
    assert "COPY --from=build /opt/venv /opt/venv" in final
    assert "build-essential" not in final and "apt-get install" not in final
    assert re.search(r"^USER hybridrec$", final, flags=re.M)
    assert "torch==2.13.0" in text and "whl/cpu" in text
    build = stages[0]
    assert re.search(r"^ARG PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu$", build, re.M)
    assert "COPY data/ml-latest-small.zip" in final
    for var in re.findall(r"(HYBRIDREC_[A-Z_]+)=", final):
        assert var in CLI_ONLY_VARS or any(
            var.removeprefix("HYBRIDREC_").lower() in s.model_fields for s in SETTINGS.values()
        ), var


def test_services_share_one_build_with_the_base_image_argument(compose: dict) -> None:
    services = compose["services"]
    builds = {name: svc["build"] for name, svc in services.items() if "build" in svc}
    assert set(builds) == {"trainer", "retrieval", "ranking", "gateway"}
    for build in builds.values():
        assert build["context"] == "."
        assert _resolve(build["args"]["BASE_IMAGE"]) == "python:3.11-slim"
    assert {svc.get("image") for name, svc in services.items() if name in builds} == {
        "hybridrec:latest"
    }


def test_trainer_uses_the_bundled_data() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert "HYBRIDREC_DATA=/app/data/ml-latest-small.zip" in text
    assert (ROOT / "data" / "ml-latest-small.zip").exists()
