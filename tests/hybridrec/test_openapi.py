"""The committed OpenAPI documents match the code, and the gateway's document is complete."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from hybridrec.openapi_export import (
    DEFAULT_DIR,
    SERVICES,
    main,
    openapi_spec,
    spec_path,
    stale_files,
    write_all,
)

ERROR_REF = "#/components/schemas/ErrorResponse"
MAIN_MODELS = (
    "RecommendationRequest",
    "Recommendations",
    "ScoredItem",
    "ItemDetail",
    "ItemList",
    "SimilarItems",
    "EventIn",
    "EventAccepted",
    "NewItem",
    "ErrorResponse",
    "Health",
)


@pytest.fixture(scope="module")
def specs() -> dict[str, dict[str, Any]]:
    return {service: openapi_spec(service) for service in SERVICES}


def _operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, op)
        for path, ops in spec["paths"].items()
        for method, op in ops.items()
        if method in {"get", "post", "put", "patch", "delete"}
    ]


def _error_ref(op: dict[str, Any], status: str) -> str | None:
    response = op["responses"].get(status)
    if response is None:
        return None
    schema = response.get("content", {}).get("application/json", {}).get("schema", {})
    ref: str | None = schema.get("$ref")
    return ref


@pytest.mark.parametrize("service", SERVICES)
def test_committed_document_matches_the_code(
    service: str, specs: dict[str, dict[str, Any]]
) -> None:
    path = spec_path(service)
    assert path.exists(), f"{path} is missing: run python -m hybridrec.openapi_export"
    committed = json.loads(path.read_text(encoding="utf-8"))
    assert committed == specs[service], (
        f"{path} is out of date: run python -m hybridrec.openapi_export and commit it"
    )


def test_check_names_the_file_that_is_out_of_date(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    written = write_all(tmp_path)
    assert [p.name for p in written] == ["gateway.json", "retrieval.json", "ranking.json"]
    assert stale_files(tmp_path) == []
    assert main(["--check", "--out", str(tmp_path)]) == 0

    ranking = spec_path("ranking", tmp_path)
    doc = json.loads(ranking.read_text(encoding="utf-8"))
    doc["info"]["version"] = "0.0.0-edited"
    ranking.write_text(json.dumps(doc), encoding="utf-8")
    spec_path("retrieval", tmp_path).unlink()

    problems = stale_files(tmp_path)
    assert problems == [
        f"{spec_path('retrieval', tmp_path)}: missing",
        f"{ranking}: out of date with services/ranking",
    ]
    capsys.readouterr()
    assert main(["--check", "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "ranking.json: out of date" in err and "retrieval.json: missing" in err
    assert "gateway.json" not in err

    assert main(["--out", str(tmp_path)]) == 0
    assert stale_files(tmp_path) == []
    assert json.loads(ranking.read_text(encoding="utf-8")) == openapi_spec("ranking")


def test_default_folder_is_docs_openapi() -> None:
    assert Path(__file__).resolve().parents[2] / "docs" / "openapi" == DEFAULT_DIR


def test_every_gateway_operation_is_documented(specs: dict[str, dict[str, Any]]) -> None:
    spec = specs["gateway"]
    ops = _operations(spec)
    assert len(ops) >= 10
    declared_tags = {t["name"] for t in spec.get("tags", [])}
    ids = [op.get("operationId") for _, _, op in ops]
    assert len(set(ids)) == len(ids), f"duplicate operationIds: {ids}"
    for method, path, op in ops:
        where = f"{method} {path}"
        assert op.get("summary", "").strip(), f"{where} has no summary"
        assert op.get("description", "").strip(), f"{where} has no description"
        assert op.get("tags"), f"{where} has no tag"
        assert set(op["tags"]) <= declared_tags, f"{where} uses an undeclared tag {op['tags']}"
        assert re.fullmatch(r"[a-z_]+", op.get("operationId", "")), (
            f"{where} has operationId {op.get('operationId')!r}, expected ^[a-z_]+$"
        )


def test_gateway_documents_422_and_404_with_the_error_model(
    specs: dict[str, dict[str, Any]],
) -> None:
    checked_422 = checked_404 = 0
    for method, path, op in _operations(specs["gateway"]):
        # Every /v1 operation takes input; the ops routes take none, so cannot answer 422.
        if path.startswith("/v1/") or op.get("parameters") or "requestBody" in op:
            assert _error_ref(op, "422") == ERROR_REF, f"{method} {path}: 422 not ErrorResponse"
            checked_422 += 1
        if "{" in path:
            assert _error_ref(op, "404") == ERROR_REF, f"{method} {path}: 404 not ErrorResponse"
            checked_404 += 1
        if path.startswith("/v1/"):
            assert _error_ref(op, "401") == ERROR_REF, f"{method} {path}: 401 not ErrorResponse"
    # 12 public /v1 operations (status, a user's history, PATCH /v1/items/{id} and the two
    # batches included) + the 2 admin ones (/v1/admin/reload, /v1/admin/bundle); 6 of them
    # name an item or a user in the path.
    assert checked_422 == 14 and checked_404 == 6, (checked_422, checked_404)


def test_main_models_carry_examples_that_validate(specs: dict[str, dict[str, Any]]) -> None:
    from shared.contracts import events_v1, public_v1

    schemas = specs["gateway"]["components"]["schemas"]
    for name in MAIN_MODELS:
        assert name in schemas, f"{name} is not in the gateway's document"
        example = schemas[name].get("example")
        assert example, f"{name} has no example"
        model = getattr(public_v1, name, None) or getattr(events_v1, name)
        model.model_validate(example)


def test_request_bodies_and_responses_use_the_shared_models(
    specs: dict[str, dict[str, Any]],
) -> None:
    paths = specs["gateway"]["paths"]

    def ref(op: dict[str, Any], status: str) -> str:
        schema = op["responses"][status]["content"]["application/json"]["schema"]
        return str(schema["$ref"]).rsplit("/", 1)[-1]

    def body(op: dict[str, Any]) -> str:
        schema = op["requestBody"]["content"]["application/json"]["schema"]
        return str(schema["$ref"]).rsplit("/", 1)[-1]

    assert ref(paths["/v1/users/{user_id}/recommendations"]["get"], "200") == "Recommendations"
    assert body(paths["/v1/recommendations"]["post"]) == "RecommendationRequest"
    assert ref(paths["/v1/items/{item_id}/similar"]["get"], "200") == "SimilarItems"
    assert ref(paths["/v1/items/{item_id}"]["get"], "200") == "ItemDetail"
    assert ref(paths["/v1/items"]["get"], "200") == "ItemList"
    assert body(paths["/v1/items"]["post"]) == "NewItem"
    assert ref(paths["/v1/items"]["post"], "201") == "ItemDetail"
    assert body(paths["/v1/users/{user_id}/events"]["post"]) == "EventIn"
    assert ref(paths["/v1/users/{user_id}/events"]["post"], "202") == "EventAccepted"
    assert ref(paths["/health/ready"]["get"], "200") == "Health"


def test_every_id_is_a_documented_string(specs: dict[str, dict[str, Any]]) -> None:
    """Path ids and the models' id fields are strings of the one id pattern."""
    from shared.contracts.ids import ID_REGEX

    for service, spec in specs.items():
        for path, ops in spec["paths"].items():
            for op in ops.values():
                for param in op.get("parameters", []):
                    if param["name"] in ("user_id", "item_id"):
                        schema = param["schema"]
                        assert schema["type"] == "string", (service, path, schema)
                        assert schema["pattern"] == ID_REGEX, (service, path, schema)
    schemas = specs["gateway"]["components"]["schemas"]
    for model in ("ItemDetail", "ScoredItem", "EventIn", "EventAccepted", "SimilarItems"):
        field = schemas[model]["properties"]["item_id"]
        assert field["type"] == "string" and field["pattern"] == ID_REGEX, (model, field)
    recent = schemas["RecommendationRequest"]["properties"]["recent_item_ids"]["items"]
    assert recent["pattern"] == ID_REGEX
