"""deploy/compose_test.py's pieces that run without Docker: pip sources for the build."""

from __future__ import annotations

import importlib.util
import sys
import urllib.request
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("compose_test", ROOT / "deploy/compose_test.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["compose_test"] = module
    spec.loader.exec_module(module)
    return module


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return bytes(resp.read())


def test_local_index_wheels_and_cert_are_served_on_loopback(
    script: ModuleType, tmp_path: Path
) -> None:
    # a PEP 503 index whose pages link to ../../files/ (like /opt/pypi/simple)
    (tmp_path / "pypi/simple/demo").mkdir(parents=True)
    (tmp_path / "pypi/files").mkdir()
    (tmp_path / "pypi/files/demo-1.0-py3-none-any.whl").write_bytes(b"wheel")
    page = '<a href="../../files/demo-1.0-py3-none-any.whl">demo</a>'
    (tmp_path / "pypi/simple/demo/index.html").write_text(page)
    (tmp_path / "wheels").mkdir()
    (tmp_path / "wheels/torch-0-py3-none-any.whl").write_bytes(b"torch")
    (tmp_path / "ca.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    sources = script.LocalSources()
    try:
        index = sources.url_for(f"file://{tmp_path}/pypi/simple", index=True)
        links = sources.url_for(str(tmp_path / "wheels"), index=False)
        cert = sources.url_for(str(tmp_path / "ca.pem"), index=False)
        remote = sources.url_for("https://pypi.org/simple", index=True)
        assert index.startswith("http://127.0.0.1:") and index.endswith("/simple/")
        assert remote == "https://pypi.org/simple"  # passed on as it is
        assert b"../../files/" in _get(index + "demo/")
        assert _get(index + "../files/demo-1.0-py3-none-any.whl") == b"wheel"
        assert b"torch-0-py3-none-any.whl" in _get(links)  # a find-links listing
        assert _get(cert).startswith(b"-----BEGIN")
    finally:
        sources.close()


def test_build_args_follow_pip_config_and_environment(
    script: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "wheels").mkdir()
    conf = tmp_path / "pip.conf"
    conf.write_text(
        "[global]\nextra-index-url = https://extra.example/simple\n"
        f"find-links = {tmp_path / 'wheels'}\ncert = {conf}\n"
    )
    for var in ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS", "PIP_CERT"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("PIP_CONFIG_FILE", str(conf))
    monkeypatch.setenv("PIP_INDEX_URL", "https://mirror.example/simple")
    sources = script.LocalSources()
    try:
        args = script.pip_build_args(sources)
    finally:
        sources.close()
    pairs = dict(a.split("=", 1) for a in args if a != "--build-arg")
    assert pairs["PIP_INDEX_URL"] == "https://mirror.example/simple"
    assert pairs["PIP_EXTRA_INDEX_URL"] == "https://extra.example/simple"
    assert pairs["PIP_FIND_LINKS"].startswith("http://127.0.0.1:")
    assert pairs["PIP_CERT_URL"].startswith("http://127.0.0.1:")
    assert pairs["PIP_CERT_URL"].endswith("/pip.conf")
