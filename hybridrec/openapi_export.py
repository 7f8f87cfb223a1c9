"""Write (or check) the committed OpenAPI documents of the three services.

``python -m hybridrec.openapi_export`` writes ``docs/openapi/{gateway,retrieval,ranking}.json``
from each service's ``create_app(...).openapi()``; ``--check`` writes nothing and exits 1,
naming each file that is missing or differs from the code. The apps are built with
default settings (the environment is not read) and without running their lifespan,
so nothing heavy loads.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DIR = PROJECT_ROOT / "docs" / "openapi"
SERVICES = ("gateway", "retrieval", "ranking")


def _gateway() -> dict[str, Any]:
    from services.gateway.app import create_app
    from services.gateway.settings import GatewaySettings

    return create_app(GatewaySettings.model_construct()).openapi()


def _retrieval() -> dict[str, Any]:
    from services.retrieval.app import create_app
    from services.retrieval.settings import RetrievalSettings

    return create_app(RetrievalSettings.model_construct()).openapi()


def _ranking() -> dict[str, Any]:
    from services.ranking.app import create_app
    from services.ranking.settings import RankingSettings

    return create_app(RankingSettings.model_construct()).openapi()


_BUILDERS: dict[str, Callable[[], dict[str, Any]]] = {
    "gateway": _gateway,
    "retrieval": _retrieval,
    "ranking": _ranking,
}


def openapi_spec(service: str) -> dict[str, Any]:
    """The OpenAPI document of ``service`` as plain JSON data (as it is written to disk).

    Args:
        service: One of ``gateway``, ``retrieval``, ``ranking``.

    Raises:
        ValueError: For another service name.
    """
    if service not in _BUILDERS:
        raise ValueError(f"unknown service {service!r}; expected one of {', '.join(SERVICES)}")
    loaded: dict[str, Any] = json.loads(render(_BUILDERS[service]()))
    return loaded


def render(spec: dict[str, Any]) -> str:
    """The committed text form: indented JSON, keys in the app's order, a final newline."""
    return json.dumps(spec, indent=2, ensure_ascii=False) + "\n"


def spec_path(service: str, out_dir: Path = DEFAULT_DIR) -> Path:
    """Where ``service``'s document is committed."""
    return out_dir / f"{service}.json"


def stale_files(out_dir: Path = DEFAULT_DIR) -> list[str]:
    """Messages naming each committed document that is missing or differs from the code."""
    problems = []
    for service in SERVICES:
        path = spec_path(service, out_dir)
        if not path.exists():
            problems.append(f"{path}: missing")
            continue
        try:
            committed = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            problems.append(f"{path}: not valid JSON ({exc})")
            continue
        if committed != openapi_spec(service):
            problems.append(f"{path}: out of date with services/{service}")
    return problems


def write_all(out_dir: Path = DEFAULT_DIR) -> list[Path]:
    """Write the three documents into ``out_dir``; returns their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for service in SERVICES:
        path = spec_path(service, out_dir)
        path.write_text(render(openapi_spec(service)), encoding="utf-8")
        written.append(path)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m hybridrec.openapi_export", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 if a file is out of date"
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_DIR, help="folder of the documents")
    args = parser.parse_args(argv)
    if args.check:
        problems = stale_files(args.out)
        for msg in problems:
            print(msg, file=sys.stderr)
        if problems:
            print(
                "regenerate them with: python -m hybridrec.openapi_export, and commit the result",
                file=sys.stderr,
            )
            return 1
        print(f"OpenAPI documents in {args.out} are up to date")
        return 0
    for path in write_all(args.out):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
