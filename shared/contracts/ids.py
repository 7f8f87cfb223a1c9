"""User and item ids: strings of a safe alphabet, the same in files, bundles and the API.

An id is 1 to 128 characters of ``A-Z a-z 0-9 . _ : @ -`` and not only dots (``.``, ``..``
would be resolved away in a URL path). The alphabet has no ``/``, no braces and no spaces, so
an id is safe in a URL path segment, in a Redis key (Redis Cluster hash tags use braces) and
in a file name. MovieLens ids are their decimal text (``"1"``, ``"296"``).

Requests may send an id as a JSON integer (``296`` is read as ``"296"``, a convenience for
numeric catalogues); floats, booleans and negative numbers are refused. Responses always
carry strings. The dataset reader (``training/data/schema.py``) checks files against the
same pattern.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, WithJsonSchema
from pydantic_core import PydanticCustomError

ID_ALPHABET = "A-Z a-z 0-9 . _ : @ -"
"""The characters an id may hold (docs/api.md, docs/own-data.md)."""
ID_MAX_LENGTH = 128
ID_PATTERN = r"[A-Za-z0-9._:@-]{1,128}"
"""An id: 1..128 characters of :data:`ID_ALPHABET` (a full match; ids of only dots are
refused besides)."""
ID_REGEX = f"^{ID_PATTERN}$"
""":data:`ID_PATTERN` anchored, as JSON Schema and pydantic's regex engine want it."""
_ID_RE = re.compile(ID_PATTERN)
ID_SHAPE = f"1 to {ID_MAX_LENGTH} characters of {ID_ALPHABET} (not only dots)"
ID_RULE = f"an id is {ID_SHAPE}, e.g. \"296\" or \"sku-00042\""
"""The sentence every bad-id error ends with."""


def is_valid_id(value: str) -> bool:
    """Whether ``value`` is an id (see the module docstring)."""
    return bool(_ID_RE.fullmatch(value)) and value.strip(".") != ""


def id_problem(value: object) -> str | None:
    """Why ``value`` is not an id (None when it is one), in words a caller can act on."""
    if not isinstance(value, str):
        return f"ids are strings; got {type(value).__name__}: {ID_RULE}"
    if not value:
        return f"the id is empty: {ID_RULE}"
    if len(value) > ID_MAX_LENGTH:
        return f"the id has {len(value)} characters: {ID_RULE}"
    bad = sorted({c for c in value if not _ID_RE.fullmatch(c)})
    if bad:
        return f"the id holds {''.join(bad)!r}, outside the alphabet: {ID_RULE}"
    if value.strip(".") == "":
        return f"the id is only dots: {ID_RULE}"
    return None


def _coerce_id(value: Any) -> str:
    """A request's id as a string: JSON integers >= 0 become their decimal text."""
    if type(value) is int and value >= 0:  # not bool: type(True) is bool
        value = str(value)  # then checked as text: at most 128 digits
    if isinstance(value, str) and is_valid_id(value):
        return value
    problem = id_problem(value)
    if type(value) is int:
        problem = f"a numeric id must be a whole number >= 0; {ID_RULE}"
    raise PydanticCustomError("invalid_id", "{problem}", {"problem": problem or ID_RULE})


_ID_SCHEMA = {
    "type": "string",
    "minLength": 1,
    "maxLength": ID_MAX_LENGTH,
    "pattern": ID_REGEX,
}

ItemId = Annotated[
    str,
    BeforeValidator(_coerce_id),
    WithJsonSchema(
        {**_ID_SCHEMA, "description": f"An item id: {ID_SHAPE}.", "examples": ["296"]}
    ),
]
"""An item id in a request or response (validated; a JSON integer is read as its text)."""

UserId = Annotated[
    str,
    BeforeValidator(_coerce_id),
    WithJsonSchema(
        {**_ID_SCHEMA, "description": f"A user id: {ID_SHAPE}.", "examples": ["42"]}
    ),
]
"""A user id in a request or response (validated; a JSON integer is read as its text)."""

ColumnItemId = Annotated[
    str, Field(min_length=1, max_length=ID_MAX_LENGTH, pattern=ID_REGEX)
]
"""An item id in the internal candidate columns: checked by pydantic's own regex engine (no
Python call per id on the hot path; the ids come from the bundle or from requests the
gateway validated as :data:`ItemId`)."""
