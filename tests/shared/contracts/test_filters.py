"""The filter contract: the GET syntax, the POST object, matching one item, and the 422s
that name the attribute (issue 19.5)."""

from __future__ import annotations

import math

import pytest

from shared.contracts.errors import ValidationError
from shared.contracts.filters import (
    ItemFilter,
    NumericRange,
    check_filter,
    fewer_than_k,
    parse_query_filter,
)

TYPES = {"categories": "categorical", "authors": "categorical", "price": "numeric",
         "year": "numeric"}


def test_query_syntax_to_filter() -> None:
    flt = parse_query_filter(
        ["categories:fantasy, poetry", "categories:crime", "authors:Ann Lee"],
        ["authors:Bob"], ["price<=20", "year>=2000", "year<2010", "pages=300"])
    assert flt is not None
    assert flt.include == {"categories": ["fantasy", "poetry", "crime"], "authors": ["Ann Lee"]}
    assert flt.exclude == {"authors": ["Bob"]}
    assert flt.range["price"] == NumericRange(lte=20)
    assert flt.range["year"] == NumericRange(gte=2000, lt=2010)
    assert flt.range["pages"] == NumericRange(gte=300, lte=300)
    assert parse_query_filter(None, [], None) is None


@pytest.mark.parametrize(
    ("include", "where", "named"),
    [(["categories"], None, "include="), (["categories:"], None, "include="),
     ([":x"], None, "include="), (None, ["price<<2"], "where="), (None, ["price<=cheap"], "where="),
     (None, ["<=3"], "where="), (None, ["price<=inf"], "where=")],
)
def test_bad_query_syntax_says_how(include: list[str] | None, where: list[str] | None,
                                   named: str) -> None:
    with pytest.raises(ValidationError, match=named) as err:
        parse_query_filter(include, None, where)
    assert "for example" in str(err.value)


def test_matching_one_item() -> None:
    flt = ItemFilter.model_validate({
        "include": {"categories": ["Fantasy", "poetry"]}, "exclude": {"authors": ["ann lee"]},
        "range": {"price": {"lte": 20}, "year": {"gt": 1999}}})
    item = {"categories": ["fantasy", "crime"], "authors": ["Bob"], "price": 12.0, "year": 2001}
    assert flt.matches(item)
    assert not flt.matches({**item, "categories": ["crime"]})
    assert not flt.matches({**item, "authors": ["Ann Lee", "Bob"]})
    assert not flt.matches({**item, "price": 20.5})
    assert not flt.matches({**item, "year": 1999})
    assert not flt.matches({**item, "price": None})  # missing fails a range
    assert flt.matches({**item, "categories": "poetry"})  # a single value
    assert not NumericRange(gte=1).holds(math.nan)


def test_post_object_is_validated() -> None:
    with pytest.raises(ValueError, match="at least one of"):
        ItemFilter.model_validate({"range": {"price": {}}})
    with pytest.raises(ValueError):
        ItemFilter.model_validate({"include": {"categories": []}})
    with pytest.raises(ValueError):
        ItemFilter.model_validate({"where": {}})  # unknown field


@pytest.mark.parametrize(
    ("flt", "named"),
    [({"include": {"colour": ["red"]}}, "unknown attribute 'colour'"),
     ({"range": {"categories": {"gte": 1}}}, "'categories' is categorical"),
     ({"exclude": {"price": ["3"]}}, "'price' is numeric")],
)
def test_check_against_the_catalogue_names_the_known_attributes(flt: dict, named: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(ValidationError) as err:
        check_filter(ItemFilter.model_validate(flt), TYPES)
    assert named in str(err.value)
    assert "authors (categorical)" in str(err.value) and "price (numeric)" in str(err.value)
    assert err.value.http_status == 422


def test_fewer_than_k() -> None:
    assert fewer_than_k(10, 10, 50) == {"matched": 50, "fewer_than_k": False,
                                        "fewer_reason": None}
    few = fewer_than_k(3, 10, 3)
    assert few["fewer_than_k"] is True and "only 3 items pass" in few["fewer_reason"]
