"""Request-time user attributes: gender/age/occupation as before, and any attribute of the
users table by name, with bounded, typed values."""

from __future__ import annotations

import math

import pytest
from pydantic import ValidationError

from shared.contracts.internal_v1 import CandidatesRequest, RankRequest
from shared.contracts.public_v1 import MAX_ATTRIBUTES, RecommendationRequest, UserFeatures


def test_named_and_arbitrary_attributes_are_kept() -> None:
    f = UserFeatures.model_validate({"gender": "F", "age": 25, "country": "FR",
                                     "income": 41.5, "languages": ["fr", "en"]})
    assert f.model_dump(exclude_none=True) == {
        "gender": "F", "age": 25, "country": "FR", "income": 41.5, "languages": ["fr", "en"]}
    assert UserFeatures().model_dump(exclude_none=True) == {}


def test_they_travel_from_the_public_request_to_retrieval_and_ranking() -> None:
    req = RecommendationRequest.model_validate({"user_features": {"country": "DE"}})
    assert req.user_features is not None
    body = req.user_features.model_dump(mode="json", exclude_none=True)
    for model in (CandidatesRequest, RankRequest):
        extra = {"columns": {"item_ids": [], "scores": [], "sources": []}} if model is RankRequest \
            else {}
        internal = model.model_validate({"user_features": body, **extra})
        assert internal.user_features is not None
        assert internal.user_features.model_dump(exclude_none=True) == {"country": "DE"}


@pytest.mark.parametrize("bad", [
    {"country": {"code": "FR"}}, {"age": 500}, {"age": "old"}, {"income": math.nan},
    {"income": math.inf}, {"": "x"}, {"x" * 101: "x"}, {"tags": ["a"] * 51},
    {"bio": "x" * 201}, {f"a{i}": 1 for i in range(MAX_ATTRIBUTES + 1)},
])
def test_bad_values_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        UserFeatures.model_validate(bad)
