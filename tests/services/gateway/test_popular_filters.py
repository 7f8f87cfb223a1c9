"""The gateway's popular fallback honours filters and availability (issue 19.5)."""

from __future__ import annotations

from services.gateway.core import PopularFallback
from shared.contracts.filters import ItemFilter


def _fallback() -> PopularFallback:
    items = [
        {"item_id": "a", "title": "A", "genres": ["x"], "popularity": 9, "available": False,
         "attributes": {"categories": ["crime"], "price": 5.0}},
        {"item_id": "b", "title": "B", "genres": ["x"], "popularity": 8,
         "attributes": {"categories": ["crime"], "price": 25.0}},
        {"item_id": "c", "title": "C", "genres": ["y"], "popularity": 7,
         "attributes": {"categories": ["poetry", "crime"], "price": 15.0}},
        {"item_id": "d", "title": "D", "genres": ["Drama"], "year": 1999, "popularity": 6},
    ]
    return PopularFallback(version="v", items=items)


def test_unavailable_items_never_come_back() -> None:
    assert [it.item_id for it in _fallback().top(10, exclude=set(), genres=[])] == ["b", "c", "d"]


def test_filters_apply_to_the_bundles_attributes() -> None:
    fb = _fallback()
    crime_cheap = ItemFilter.model_validate(
        {"include": {"categories": ["CRIME"]}, "range": {"price": {"lte": 20}}})
    assert [it.item_id for it in fb.top(10, exclude=set(), genres=[], flt=crime_cheap)] == ["c"]
    no_poetry = ItemFilter(exclude={"categories": ["poetry"]})
    got = fb.top(10, exclude={"b"}, genres=[], flt=no_poetry)
    assert [it.item_id for it in got] == ["d"]  # no categories at all: nothing to exclude
    # an entry of an older popular.json has no attributes: genres and year stand for them
    old = ItemFilter.model_validate({"include": {"genres": ["drama"]},
                                     "range": {"year": {"lt": 2000}}})
    assert [it.item_id for it in fb.top(10, exclude=set(), genres=[], flt=old)] == ["d"]
