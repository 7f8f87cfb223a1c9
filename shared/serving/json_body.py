"""Request bodies parsed straight from the raw bytes by pydantic's JSON parser.

FastAPI reads a JSON body with the standard library's ``json.loads`` and then
validates the Python objects: two passes that took a large share of the ranking
service's event loop for its candidate bodies (figures:
``docs/scaling.md#measurements-behind-code-choices``). :func:`json_body` is a
dependency that validates the raw bytes in one pass (``model_validate_json``), with
the same 422 answer on bad input; :func:`documented_body` and :func:`register_schemas`
keep the OpenAPI document exactly as FastAPI would have written it for a declared body.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError

M = TypeVar("M", bound=BaseModel)
_REF = "#/components/schemas/{model}"


def json_body(model: type[M]) -> Callable[[Request], Awaitable[M]]:
    """A dependency returning the request body validated as ``model`` (422 otherwise)."""

    async def parse(request: Request) -> M:
        raw = await request.body()
        try:
            return model.model_validate_json(raw)
        except PydanticValidationError as exc:
            errors = exc.errors(include_url=False)
            if not raw.strip():
                errors = [{"type": "missing", "loc": (), "msg": "Field required", "input": None}]
            raise RequestValidationError(
                [{**e, "loc": ("body", *e["loc"])} for e in errors]
            ) from exc

    return parse


def documented_body(model: type[BaseModel]) -> dict[str, Any]:
    """``openapi_extra`` of a route whose body :func:`json_body` parses."""
    ref = {"$ref": _REF.format(model=model.__name__)}
    return {"requestBody": {"content": {"application/json": {"schema": ref}}, "required": True}}


def register_schemas(app: FastAPI, *models: type[BaseModel]) -> None:
    """Add ``models`` (and the models they use) to the app's OpenAPI components."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        doc = build()
        schemas = doc.setdefault("components", {}).setdefault("schemas", {})
        for model in models:
            schema = model.model_json_schema(ref_template=_REF, mode="validation")
            for name, sub in schema.pop("$defs", {}).items():
                schemas.setdefault(name, sub)
            schemas.setdefault(model.__name__, schema)
        doc["components"]["schemas"] = dict(sorted(schemas.items()))
        app.openapi_schema = doc
        return doc

    app.openapi = openapi  # type: ignore[method-assign]
