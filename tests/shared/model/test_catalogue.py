"""Catalogue: id lookup, title search, genre masks, built from a bundle-like parquet table."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from shared.contracts.errors import NotFoundError
from shared.model.catalogue import Catalogue, normalise_title

ROWS = [
    # item_id, title, year, genres, tags, overview, popularity
    ("862", "Toy Story (1995)", 1995, ["Animation", "Comedy"], ["pixar"], "Toys come alive.", 300),
    ("5", "Story of Toys, The (1980)", 1980, ["Documentary"], [], None, 900),
    ("3114", "Toy Story 2 (1999)", 1999, ["Animation", "Comedy"], ["pixar", "sequel"], None, 200),
    ("78499", "Toy Story 3 (2010)", 2010, ["Animation"], [], None, 200),
    (
        "4973",
        "Amélie (Fabuleux destin d'Amélie Poulain, Le) (2001)",
        2001,
        ["Romance"],
        [],
        None,
        150,
    ),
    ("1200", "Aliens (1986)", 1986, ["Sci-Fi", "Action"], [], None, 500),
    ("1214", "Alien (1979)", 1979, ["Sci-Fi", "Horror"], [], None, 400),
    ("99", "Storytelling (2001)", None, [], [], None, 50),
    ("42", "A Toy (1900)", 1900, ["(no genres listed)"], [], None, 1),
]


def _frame() -> pd.DataFrame:
    return pd.DataFrame(
        ROWS, columns=["item_id", "title", "year", "genres", "tags", "overview", "popularity"]
    ).astype({"year": "Int64"})


@pytest.fixture
def cat(tmp_path: Path) -> Catalogue:
    """Built like the services do: from items.parquet (list cells come back as arrays)."""
    path = tmp_path / "items.parquet"
    _frame().to_parquet(path, index=False)
    return Catalogue.from_frame(pd.read_parquet(path))


def _titles(cat: Catalogue, positions: list[int]) -> list[str]:
    return [cat.titles[p] for p in positions]


def test_from_frame_fields(cat: Catalogue) -> None:
    assert len(cat) == len(ROWS)
    assert cat.item_ids.dtype.kind == "U"  # ids are strings: never read as numbers
    assert cat.item_ids.tolist() == [r[0] for r in ROWS]
    assert cat.years[0] == 1995 and cat.years[7] is None
    assert cat.genres[0] == ["Animation", "Comedy"] and cat.genres[7] == []
    assert cat.tags[2] == ["pixar", "sequel"]
    assert cat.overviews[0] == "Toys come alive." and cat.overviews[1] is None
    assert cat.popularity.dtype == np.int64 and cat.popularity[1] == 900
    assert cat.record(0) == {
        "item_id": "862",
        "title": "Toy Story (1995)",
        "year": 1995,
        "genres": ["Animation", "Comedy"],
        "tags": ["pixar"],
        "overview": "Toys come alive.",
        "popularity": 300,
        "fresh": False,
        "attributes": {"genres": ["Animation", "Comedy"], "year": 1995.0},
        "available": True,
    }
    assert isinstance(cat.record(7)["genres"], list)


def test_from_frame_without_popularity_and_with_joined_genre_strings() -> None:
    frame = _frame().drop(columns=["popularity"])
    frame["genres"] = [
        "Animation|Comedy",
        "Documentary",
        None,
        "Animation",
        "Romance",
        "Sci-Fi|Action",
        "Sci-Fi|Horror",
        "",
        "(no genres listed)",
    ]
    frame["tags"] = [None] * len(frame)
    cat = Catalogue.from_frame(frame)
    assert cat.popularity.tolist() == [0] * len(ROWS)
    assert cat.genres[0] == ["Animation", "Comedy"]  # not ['A', 'n', 'i', ...]
    assert cat.genres[2] == [] and cat.genres[7] == []
    assert cat.tags[0] == []


def test_positions_and_unknown_ids(cat: Catalogue) -> None:
    got = cat.positions(["3114", "862", "123456", "42", "-1", "0", "78499", "042", "42 "])
    assert got.dtype == np.int64
    assert got.tolist() == [2, 0, -1, 8, -1, -1, 3, -1, -1]  # "042" is another id than "42"
    assert cat.positions(np.asarray(["78499", "78500", "zzz"])).tolist() == [3, -1, -1]
    assert cat.positions([78499, 5]).tolist() == [3, 1]  # integers are read as their text
    assert cat.positions([]).tolist() == []
    for pos, row in enumerate(ROWS):
        assert cat.position(row[0]) == pos


def test_position_of_unknown_id_raises_not_found(cat: Catalogue) -> None:
    with pytest.raises(NotFoundError) as info:
        cat.position("31337")
    err = info.value
    assert "31337" in err.message and "not in the catalogue" in err.message
    assert "/v1/items?q=" in err.message  # says how to find a valid id
    assert err.http_status == 404 and err.code == "not_found"


def test_next_item_id_is_above_the_largest_decimal_id(cat: Catalogue) -> None:
    assert cat.next_item_id == 78500  # by number, not text order ("99" > "78499" as text)
    frame = _frame()
    frame["item_id"] = ["sku-1", "b", "7", "0009", "x:y", "a@b", "c.d", "e_f", "g-h"]
    assert Catalogue.from_frame(frame).next_item_id == 10
    frame["item_id"] = [f"sku-{i}" for i in range(len(frame))]
    assert Catalogue.from_frame(frame).next_item_id == 1


def test_empty_catalogue() -> None:
    empty = Catalogue.from_frame(_frame().iloc[:0])
    assert len(empty) == 0
    assert empty.next_item_id == 1
    assert empty.positions(["1", "2"]).tolist() == [-1, -1]
    assert empty.search("toy", 5) == []
    assert empty.genre_mask(["Comedy"]).tolist() == []
    with pytest.raises(NotFoundError):
        empty.position("1")


def test_search_toy_story_finds_the_films_first(cat: Catalogue) -> None:
    got = _titles(cat, cat.search("toy story", 10))
    assert got[:3] == ["Toy Story (1995)", "Toy Story 2 (1999)", "Toy Story 3 (2010)"]
    # "Story of Toys, The" is more popular but has "toys", not the word "toy"
    assert "Story of Toys, The (1980)" not in got
    assert _titles(cat, cat.search("Toy Story", 1)) == ["Toy Story (1995)"]
    # words in any order
    assert _titles(cat, cat.search("story toy", 3))[0] == "Toy Story (1995)"


def test_search_prefix_on_the_last_word_only(cat: Catalogue) -> None:
    assert _titles(cat, cat.search("toy sto", 10)) == [
        "Toy Story (1995)",
        "Toy Story 2 (1999)",
        "Toy Story 3 (2010)",
    ]
    # "stor" also matches "Storytelling" and "Story of Toys"
    assert set(_titles(cat, cat.search("stor", 10))) == {
        "Toy Story (1995)",
        "Toy Story 2 (1999)",
        "Toy Story 3 (2010)",
        "Story of Toys, The (1980)",
        "Storytelling (2001)",
    }
    # only the last word is a prefix: "sto" as a first word must match exactly
    assert cat.search("sto toy", 10) == []
    # a one-letter last word matches whole words only ("A Toy"), not every "a..." word
    assert _titles(cat, cat.search("toy a", 10)) == ["A Toy (1900)"]


def test_search_prefers_whole_words_then_popularity(cat: Catalogue) -> None:
    # "Aliens" is more popular, but "alien" is the whole word of "Alien (1979)"
    assert _titles(cat, cat.search("alien", 5)) == ["Alien (1979)", "Aliens (1986)"]
    assert _titles(cat, cat.search("alie", 5)) == ["Aliens (1986)", "Alien (1979)"]
    # equal popularity: the shorter title first
    assert _titles(cat, cat.search("toy story 2", 5))[0] == "Toy Story 2 (1999)"
    # popularity among whole-word matches: Toy Story (300) before the sequels (200)
    assert _titles(cat, cat.search("toy", 4)) == [
        "Toy Story (1995)",
        "Toy Story 2 (1999)",
        "Toy Story 3 (2010)",
        "A Toy (1900)",
    ]


def test_search_folds_accents_and_case(cat: Catalogue) -> None:
    amelie = "Amélie (Fabuleux destin d'Amélie Poulain, Le) (2001)"
    assert _titles(cat, cat.search("amelie", 5)) == [amelie]
    assert _titles(cat, cat.search("AMÉLIE poulain", 5)) == [amelie]
    assert _titles(cat, cat.search("  Amé  ", 5)) == [amelie]


def test_search_without_match_or_words(cat: Catalogue) -> None:
    assert cat.search("xyzzy", 10) == []
    assert cat.search("toy xyzzy", 10) == []
    assert cat.search("", 10) == []
    assert cat.search("!!! ???", 10) == []
    assert cat.search("toy", 0) == []


def test_search_limit(cat: Catalogue) -> None:
    full = cat.search("toy", 10)
    assert len(full) == 5  # Toy Story x3, A Toy, and "Toys" by prefix
    assert cat.titles[full[-1]] == "Story of Toys, The (1980)"  # prefix-only match last
    assert cat.search("toy", 2) == full[:2]


def test_normalise_title() -> None:
    assert normalise_title("Amélie (2001)") == ["amelie", "2001"]
    assert normalise_title("Léon: The Professional") == ["leon", "the", "professional"]
    assert normalise_title("") == []


def test_genre_mask(cat: Catalogue) -> None:
    mask = cat.genre_mask(["comedy"])
    assert mask.dtype == bool and mask.shape == (len(ROWS),)
    assert np.flatnonzero(mask).tolist() == [0, 2]
    assert np.flatnonzero(cat.genre_mask(["SCI-FI", "Romance"])).tolist() == [4, 5, 6]
    assert not cat.genre_mask(["Western"]).any()
    assert not cat.genre_mask([]).any()


@pytest.mark.parametrize("seed", [0, 1])
def test_string_positions_match_a_dict(seed: int) -> None:
    """Sorted-array lookups of string ids agree with a plain dict, first position winning."""
    rng = np.random.default_rng(seed)
    ids = [f"sku-{i:05d}" if i % 3 else str(i) for i in rng.choice(50_000, 800, replace=False)]
    ids[10] = ids[20]  # a duplicated id maps to its first position
    n = len(ids)
    frame = pd.DataFrame(
        {"item_id": ids, "title": [f"t{i}" for i in range(n)], "genres": [[]] * n,
         "tags": [[]] * n, "year": [None] * n, "overview": [None] * n}
    )  # fmt: skip
    cat = Catalogue.from_frame(frame)
    first: dict[str, int] = {}
    for pos, i in enumerate(ids):
        first.setdefault(i, pos)
    queries = ids + [f"sku-{i:05d}" for i in rng.integers(0, 60_000, 500)] + ["", "a" * 200]
    got = cat.positions(queries)
    assert got.dtype == np.int64
    assert got.tolist() == [first.get(q, -1) for q in queries]
    assert cat.positions([ids[20]]).tolist() == [10]
