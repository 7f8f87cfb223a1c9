"""The architecture's import rules, checked on every module's source (no import needed).

- ``shared.contracts`` and ``shared.model`` never import FastAPI, uvicorn, starlette or
  ``shared.serving``: training uses them without a web stack.
- ``shared.contracts`` imports nothing heavier than pydantic, numpy and pandas.
- services never import ``training`` (the bundle is the interface) or ``bench``.
- the gateway never imports retrieval's or ranking's code, nor the model numerics that
  belong to them (search, towers, ranker): it reaches both only over HTTP.
- ``shared`` never imports ``services``, ``training``, ``bench`` or ``hybridrec``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def imports_of(path: Path, root: Path = ROOT) -> set[str]:
    """Every module name a file imports (absolute names; relative ones resolved)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = ".".join(path.relative_to(root).with_suffix("").parts[:-1])
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                mod = ".".join([*base, node.module] if node.module else base)
            else:
                mod = node.module or ""
            names.add(mod)
            names.update(f"{mod}.{alias.name}" for alias in node.names)
    return names


def modules(folder: str, root: Path = ROOT) -> list[Path]:
    return sorted((root / folder).rglob("*.py"))


def offenders(folder: str, forbidden: tuple[str, ...], root: Path = ROOT) -> list[str]:
    """``file: module`` for each import under ``folder`` of a forbidden package."""
    out = []
    for path in modules(folder, root):
        for name in sorted(imports_of(path, root)):
            if any(name == f or name.startswith(f + ".") for f in forbidden):
                out.append(f"{path.relative_to(root)}: {name}")
    return out


WEB = ("fastapi", "uvicorn", "starlette", "fastapi_offline", "shared.serving", "shared.stores")


@pytest.mark.parametrize(
    ("folder", "forbidden"),
    [
        ("shared/contracts", (*WEB, "shared.model", "tensorflow", "keras", "torch")),
        ("shared/model", WEB),
        ("shared", ("services", "training", "bench", "hybridrec", "tests")),
        ("services", ("training", "bench", "tests")),
        (
            "services/gateway",
            (
                "services.retrieval",
                "services.ranking",
                "shared.model.search",
                "shared.model.query_serving",
                "shared.model.ranker_serving",
                "shared.model.ranker_features",
                "tensorflow",
                "keras",
                "annoy",
                "hnswlib",
            ),
        ),
        ("services/retrieval", ("services.gateway", "services.ranking")),
        ("services/ranking", ("services.gateway", "services.retrieval")),
        ("training", ("services", "shared.serving", "fastapi", "uvicorn")),
    ],
)
def test_import_rules(folder: str, forbidden: tuple[str, ...]) -> None:
    assert modules(folder), f"{folder} has no modules: the rule would check nothing"
    bad = offenders(folder, forbidden)
    assert not bad, f"{folder} must not import {forbidden}; found:\n" + "\n".join(bad)


def test_rule_checker_sees_a_forbidden_import(tmp_path: Path) -> None:
    """The checker itself can fail: a relative and an absolute forbidden import are found."""
    probe = tmp_path / "shared" / "model" / "probe.py"
    probe.parent.mkdir(parents=True)
    probe.write_text("from fastapi import FastAPI\nfrom ..serving import timing\nimport numpy\n")
    bad = offenders("shared/model", WEB, root=tmp_path)
    found = {line.split(": ")[1] for line in bad}
    assert {"fastapi", "shared.serving"} <= found
    assert "numpy" not in found
