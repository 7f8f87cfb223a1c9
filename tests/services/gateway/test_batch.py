"""Batch bodies: JSON array or NDJSON, refused whole when malformed (issue 19.5)."""

from __future__ import annotations

import pytest

from services.gateway.batch import parse_rows
from shared.contracts.errors import ValidationError


def test_array_and_ndjson_give_the_same_rows() -> None:
    rows = [{"a": 1}, {"b": [2]}, "not an object"]
    assert parse_rows(b'[{"a": 1}, {"b": [2]}, "not an object"]', 10, "x") == rows
    assert parse_rows(b'{"a": 1}\n\n{"b": [2]}\r\n"not an object"\n', 10, "x") == rows
    assert parse_rows(b'{"a": 1}', 10, "x") == [{"a": 1}]  # one NDJSON line


@pytest.mark.parametrize(
    ("raw", "says"),
    [(b"", "empty"), (b"  \n", "empty"), (b"[]", "no rows"), (b'[{"a": 1},', "not a valid JSON"),
     (b'{"a": 1}\n{oops}\n', "line 2"), (b"[" + b"{}," * 10 + b"{}]", "at most 10")],
)
def test_malformed_bodies_are_refused_whole(raw: bytes, says: str) -> None:
    with pytest.raises(ValidationError, match=says.replace("no rows", "holds no")):
        parse_rows(raw, 10, "rows")
