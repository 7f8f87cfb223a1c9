"""download_dataset against a local HTTP server on 127.0.0.1 (never the real network)."""

from __future__ import annotations

import hashlib
import socket
import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from shared.contracts.errors import ConfigError, DownloadError
from training.data import DATASETS, download_dataset
from training.data.download import DatasetSource

PAYLOAD = b"PK-not-really-a-zip " * 5000  # 100 kB, several read chunks


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        """Keep test output clean."""


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    """Serve ``tmp_path/www`` on 127.0.0.1; yields the base URL."""
    www = tmp_path / "www"
    www.mkdir()
    (www / "ml-100k.zip").write_bytes(PAYLOAD)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(_QuietHandler, directory=str(www)))
    thread = threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def _pin(monkeypatch: pytest.MonkeyPatch, url: str, sha256: str, md5: str | None = None) -> None:
    monkeypatch.setitem(
        DATASETS,
        "ml-100k",
        DatasetSource(url=url, sha256=sha256, md5=md5, size=len(PAYLOAD), licence="test"),
    )


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_download_verifies_and_renames(
    server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _pin(
        monkeypatch,
        f"{server}/ml-100k.zip",
        hashlib.sha256(PAYLOAD).hexdigest(),
        hashlib.md5(PAYLOAD).hexdigest(),
    )
    dest = tmp_path / "downloads"
    path = download_dataset("ml-100k", dest)
    assert path == dest / "ml-100k.zip"
    assert path.read_bytes() == PAYLOAD
    assert sorted(p.name for p in dest.iterdir()) == ["ml-100k.zip"]  # no .part left over


def test_checksum_mismatch_removes_file(
    server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _pin(monkeypatch, f"{server}/ml-100k.zip", "0" * 64)
    dest = tmp_path / "downloads"
    with pytest.raises(DownloadError) as info:
        download_dataset("ml-100k", dest)
    message = str(info.value)
    assert "checksum mismatch" in message
    assert f"expected sha256 {'0' * 64}, got {hashlib.sha256(PAYLOAD).hexdigest()}" in message
    assert "removed" in message and "--data PATH" in message
    assert list(dest.iterdir()) == []


def test_md5_mismatch_is_caught_too(
    server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _pin(monkeypatch, f"{server}/ml-100k.zip", hashlib.sha256(PAYLOAD).hexdigest(), "f" * 32)
    with pytest.raises(DownloadError, match=f"expected md5 {'f' * 32}"):
        download_dataset("ml-100k", tmp_path / "d")


def test_offline_says_how_to_proceed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _pin(monkeypatch, f"http://127.0.0.1:{_closed_port()}/ml-100k.zip", "0" * 64)
    dest = tmp_path / "downloads"
    with pytest.raises(DownloadError) as info:
        download_dataset("ml-100k", dest)
    message = str(info.value)
    assert "could not reach 127.0.0.1" in message
    assert "download ml-100k.zip by hand" in message and "--data PATH" in message
    assert list(dest.iterdir()) == []


def test_http_error_status(server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _pin(monkeypatch, f"{server}/missing.zip", "0" * 64)
    with pytest.raises(DownloadError, match="answered HTTP 404"):
        download_dataset("ml-100k", tmp_path / "d")
    assert list((tmp_path / "d").iterdir()) == []


def test_existing_verified_file_is_not_downloaded_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _pin(
        monkeypatch,
        f"http://127.0.0.1:{_closed_port()}/ml-100k.zip",
        hashlib.sha256(PAYLOAD).hexdigest(),
    )
    (tmp_path / "ml-100k.zip").write_bytes(PAYLOAD)
    assert download_dataset("ml-100k", tmp_path) == tmp_path / "ml-100k.zip"
    with pytest.raises(DownloadError, match="could not reach"):  # force goes to the network
        download_dataset("ml-100k", tmp_path, force=True)
    assert (tmp_path / "ml-100k.zip").read_bytes() == PAYLOAD  # failed retry kept the copy


def test_corrupt_existing_file_is_replaced(
    server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _pin(monkeypatch, f"{server}/ml-100k.zip", hashlib.sha256(PAYLOAD).hexdigest())
    (tmp_path / "ml-100k.zip").write_bytes(b"truncated")
    assert download_dataset("ml-100k", tmp_path).read_bytes() == PAYLOAD


def test_unknown_name() -> None:
    with pytest.raises(ConfigError, match="unknown dataset 'ml-2m'"):
        download_dataset("ml-2m", "/nonexistent")


def test_pins_cover_the_releases_and_match_the_bundled_zip(bundled_zip: Path) -> None:
    assert set(DATASETS) == {"ml-latest-small", "ml-100k", "ml-1m", "ml-25m", "ml-32m"}
    for name, spec in DATASETS.items():
        assert spec["url"] == f"https://files.grouplens.org/datasets/movielens/{name}.zip"
        assert len(spec["sha256"]) == 64 and int(spec["sha256"], 16) >= 0
    small = DATASETS["ml-latest-small"]
    assert hashlib.sha256(bundled_zip.read_bytes()).hexdigest() == small["sha256"]
    assert bundled_zip.stat().st_size == small["size"]
