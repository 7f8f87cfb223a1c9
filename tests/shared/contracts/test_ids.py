"""Ids in the contracts: one safe alphabet, JSON integers read as text, clear errors."""

from __future__ import annotations

import re

import pytest
from pydantic import TypeAdapter
from pydantic import ValidationError as PydanticValidationError

from shared.contracts.events_v1 import EventIn
from shared.contracts.ids import (
    ID_ALPHABET,
    ID_PATTERN,
    ID_REGEX,
    ItemId,
    UserId,
    id_problem,
    is_valid_id,
)
from shared.contracts.internal_v1 import CandidateColumns
from shared.contracts.public_v1 import (
    Item,
    RecommendationRequest,
)
from training.data.schema import ID_PATTERN as FILE_ID_PATTERN

ITEM = TypeAdapter(ItemId)


@pytest.mark.parametrize(
    "good", ["1", "296", "sku-00042", "a:b@c.d_e-f", "x" * 128, "0", "007", ".a", "A.B"]
)
def test_valid_ids_pass_unchanged(good: str) -> None:
    assert is_valid_id(good) and id_problem(good) is None
    assert ITEM.validate_python(good) == good
    assert ITEM.validate_json(f'"{good}"') == good


@pytest.mark.parametrize(
    ("bad", "why"),
    [
        ("", "empty"),
        ("x" * 129, "129 characters"),
        ("a b", "' '"),
        ("a/b", "'/'"),
        ("{u1}", "'{}'"),
        ("é", "'é'"),
        ("..", "only dots"),
        (".", "only dots"),
    ],
)
def test_bad_ids_are_refused_naming_the_alphabet(bad: str, why: str) -> None:
    assert not is_valid_id(bad)
    problem = id_problem(bad)
    assert problem is not None and why in problem and ID_ALPHABET in problem
    with pytest.raises(PydanticValidationError) as info:
        ITEM.validate_python(bad)
    err = info.value.errors()[0]
    assert err["type"] == "invalid_id" and ID_ALPHABET in err["msg"] and why in err["msg"]


def test_json_integers_are_read_as_their_text_and_nothing_else_is() -> None:
    assert ITEM.validate_json("296") == "296"
    assert ITEM.validate_python(0) == "0"
    for bad in ("-1", "2.5", "true", "null", "[1]", "1" * 129):
        with pytest.raises(PydanticValidationError) as info:
            ITEM.validate_json(bad)
        assert ID_ALPHABET in str(info.value), bad


def test_models_take_numbers_and_answer_strings() -> None:
    req = RecommendationRequest.model_validate(
        {"user_id": 42, "recent_item_ids": [1, "sku-2"], "ratings": [{"item_id": 3, "rating": 4}]}
    )
    assert req.user_id == "42" and req.recent_item_ids == ["1", "sku-2"]
    assert req.ratings[0].item_id == "3"
    assert Item(item_id=296, title="t").model_dump(mode="json")["item_id"] == "296"
    with pytest.raises(PydanticValidationError, match="outside the alphabet"):
        EventIn.model_validate({"item_id": "a b"})


def test_internal_columns_check_ids_without_coercion() -> None:
    """The candidate columns use pydantic's own regex: same alphabet, no Python per id."""
    ok = CandidateColumns(item_ids=["sku-1", "2"], scores=[1.0, 0.5], sources=["a", "b"])
    assert ok.item_ids == ["sku-1", "2"]
    for bad in (["a b"], [""], ["x" * 129], [7]):
        with pytest.raises(PydanticValidationError):
            CandidateColumns(item_ids=bad, scores=[1.0], sources=["a"])


def test_json_schema_and_files_use_the_same_pattern() -> None:
    schema = TypeAdapter(UserId).json_schema()
    assert schema["type"] == "string" and schema["pattern"] == ID_REGEX
    assert schema["minLength"] == 1 and schema["maxLength"] == 128
    assert FILE_ID_PATTERN is ID_PATTERN  # the dataset reader checks files the same way
    assert re.fullmatch(FILE_ID_PATTERN, "sku-00042")
