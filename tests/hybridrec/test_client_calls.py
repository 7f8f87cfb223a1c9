"""Request building and answer parsing of the client's calls (hybridrec.client_calls), no I/O."""

from __future__ import annotations

import httpx
import pytest

from hybridrec.client_calls import Calls, HybridrecClientError, filter_params
from shared.contracts.public_v1 import Recommendations


def test_recommend_for_user_builds_the_get_with_filters() -> None:
    filters = filter_params({"genres": ["Drama", "Comedy"]}, None, ["year>=2000"])
    call = Calls.recommend_for_user("shop:42", 5, True, ["Sci-Fi"], False, filters)
    assert (call.method, call.path, call.model) == (
        "GET", "/v1/users/shop%3A42/recommendations", Recommendations
    )
    assert call.params == {
        "k": 5, "exclude_seen": True, "explain": False, "include": ["genres:Drama,Comedy"],
        "where": ["year>=2000"], "genres": "Sci-Fi",
    }


def test_an_int_id_is_its_text_and_a_bad_id_raises_before_sending() -> None:
    assert Calls.get_item(296).path == "/v1/items/296"
    with pytest.raises(HybridrecClientError) as err:
        Calls.get_item("no/slash")
    assert err.value.code == "invalid_request" and err.value.status is None


def test_parse_turns_the_error_body_into_the_client_error() -> None:
    call = Calls.status()
    body = {"error": {"code": "not_found", "message": "no such user", "details": {}},
            "request_id": "r1"}
    with pytest.raises(HybridrecClientError) as err:
        call.parse(httpx.Response(404, json=body))
    assert (err.value.status, err.value.code, err.value.request_id) == (404, "not_found", "r1")
    with pytest.raises(HybridrecClientError, match="invalid_response"):
        call.parse(httpx.Response(200, json={"unexpected": True}))
