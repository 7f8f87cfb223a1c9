"""Item overviews are joined from TMDB- or IMDb-keyed CSVs through the links table."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.contracts.errors import DataError
from training.data import enrich_with_text, load_dataset

# Kaggle "TMDB 5000" layout: TMDB id in column `id`, JSON-ish columns with quoted commas.
TMDB_CSV = (
    "budget,genres,id,overview,title\n"
    '30000000,"[{""id"": 16, ""name"": ""Animation""}]",862,"Led by Woody, Andy\'s toys.",'
    "Toy Story\n"
    '0,"[]",2207,  A hotel in Torquay.  ,Fawlty Towers\n'
    '0,"[]",9087,,The American President\n'  # empty overview: not used
    '0,"[]",not-a-number,Junk row.,Junk\n'  # unusable id: skipped
    '0,"[]",555,Nobody links to this.,Other\n'
)

IMDB_CSV = (
    "imdb_id,overview\n"
    "tt0114709,Toys come alive.\n"
    "tt0112346,A widowed president falls in love.\n"
    "tt0114709,A later duplicate that is ignored.\n"
)


def _overviews(ds) -> dict[int, object]:
    return dict(zip(ds.items["item_id"], ds.items["overview"], strict=True))


def test_tmdb_id_column(csv_release, tmp_path: Path) -> None:
    ds = load_dataset(csv_release())
    text = tmp_path / "tmdb.csv"
    text.write_text(TMDB_CSV)
    out = enrich_with_text(ds, text)
    assert _overviews(out) == {
        1: "Led by Woody, Andy's toys.",
        2: None,
        3: None,
        4: "A hotel in Torquay.",
    }
    assert out.info["items_with_overview"] == 2
    assert out.info["items_with_overview_pct"] == 50.0
    assert out.info["item_text_key"] == "id"
    assert out.summary()["items_with_overview"] == 2
    assert ds.items["overview"].isna().all()  # the input dataset is not modified
    assert str(out.items["overview"].dtype) == "object"


def test_imdb_ids_with_tt_prefix(csv_release, tmp_path: Path) -> None:
    text = tmp_path / "imdb.csv"
    text.write_text(IMDB_CSV)
    out = enrich_with_text(load_dataset(csv_release()), text)
    assert _overviews(out) == {
        1: "Toys come alive.",
        2: "A widowed president falls in love.",
        3: None,
        4: None,
    }
    assert out.info["item_text_key"] == "imdb_id"
    assert out.info["items_with_overview_pct"] == 50.0


def test_numeric_imdb_id_column_and_explicit_key(csv_release, tmp_path: Path) -> None:
    text = tmp_path / "both.csv"
    text.write_text("tmdbId,imdbId,overview\n99999,0105946,Space station drama.\n")
    ds = load_dataset(csv_release())
    by_tmdb = enrich_with_text(ds, text)  # auto-detect prefers tmdbId: 99999 matches nothing
    assert by_tmdb.info["items_with_overview"] == 0
    by_imdb = enrich_with_text(ds, text, key="imdbId")
    assert _overviews(by_imdb)[3] == "Space station drama."


def test_load_dataset_item_text_argument(csv_release, tmp_path: Path) -> None:
    text = tmp_path / "tmdb.csv"
    text.write_text(TMDB_CSV)
    ds = load_dataset(csv_release(), item_text=text)
    assert ds.info["items_with_overview"] == 2
    assert ds.info["duplicates_dropped"] == 0  # reader info is kept


def test_enrichment_keeps_existing_overviews(csv_release, tmp_path: Path) -> None:
    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    first.write_text(TMDB_CSV)
    second.write_text(IMDB_CSV)
    out = enrich_with_text(enrich_with_text(load_dataset(csv_release()), first), second)
    assert _overviews(out) == {
        1: "Toys come alive.",
        2: "A widowed president falls in love.",
        3: None,
        4: "A hotel in Torquay.",
    }
    assert out.info["items_with_overview"] == 3


@pytest.mark.parametrize(
    ("content", "key", "fragments"),
    [
        ("id,title\n862,Toy Story\n", None, ["no 'overview' column", "line 1"]),
        (
            "title,overview\nToy Story,Toys.\n",
            None,
            ["no id column to join on", "tmdbId", "imdb_id"],
        ),
        ("id,overview\n862,Toys.\n", "tmdb", ["key column 'tmdb' is not in the header"]),
    ],
)
def test_enrichment_errors(
    csv_release, tmp_path: Path, content: str, key: str | None, fragments: list[str]
) -> None:
    text = tmp_path / "text.csv"
    text.write_text(content)
    with pytest.raises(DataError) as info:
        enrich_with_text(load_dataset(csv_release()), text, key=key)
    message = str(info.value)
    assert str(text) in message
    for fragment in fragments:
        assert fragment in message, message


def test_enrichment_needs_links_and_an_existing_file(ml1m_release, tmp_path: Path) -> None:
    text = tmp_path / "tmdb.csv"
    text.write_text(TMDB_CSV)
    with pytest.raises(DataError, match="has no links table"):
        enrich_with_text(load_dataset(ml1m_release()), text)
    with pytest.raises(DataError, match="no such file"):
        enrich_with_text(load_dataset(ml1m_release()), tmp_path / "missing.csv")
