"""Each MovieLens layout loads into the canonical Dataset with the documented dtypes."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd
import pytest

from training.data import DATASETS, load_dataset
from training.data.dataset import INTERACTION_COLUMNS, ITEM_COLUMNS, TAG_COLUMNS, Dataset
from training.data.view import training_items


def _assert_canonical(ds: Dataset) -> None:
    inter, items = ds.interactions, ds.items
    # + the confidence: rating events weigh their value by default (event_weights)
    assert tuple(inter.columns) == (*INTERACTION_COLUMNS, "weight")
    assert [str(t) for t in inter.dtypes] == ["int64", "int64", "float32", "int64", "float32"]
    assert (inter["weight"] == inter["rating"]).all()
    assert tuple(items.columns) == ITEM_COLUMNS
    assert str(items["item_id"].dtype) == "int64"
    assert str(items["year"].dtype) == "Int64"
    assert all(isinstance(t, str) for t in items["title"])
    assert all(isinstance(g, list) for g in items["genres"])
    assert all(isinstance(t, list) for t in items["tags"])
    assert str(ds.users["user_id"].dtype) == "int64"
    assert sorted(ds.users["user_id"]) == sorted(inter["user_id"].unique())
    assert not inter.duplicated(["user_id", "item_id"]).any()
    if ds.tags is not None:
        assert tuple(ds.tags.columns) == TAG_COLUMNS
        assert [str(ds.tags[c].dtype) for c in ("user_id", "item_id", "timestamp")] == [
            "int64"] * 3
        assert all(isinstance(t, str) and t == t.strip().lower() and t for t in ds.tags["tag"])


def _item(ds: Dataset, item_id: int) -> pd.Series:
    return _item_of(ds.items, item_id)


def _item_of(items: pd.DataFrame, item_id: int) -> pd.Series:
    return items.set_index("item_id").loc[item_id]


def test_csv_folder_titles_years_genres_tags_links(csv_release) -> None:
    ds = load_dataset(csv_release())
    _assert_canonical(ds)
    assert ds.name == "ml-latest-small"
    assert ds.info["format"] == "csv" and ds.info["duplicates_dropped"] == 0
    assert len(ds.interactions) == 5 and len(ds.items) == 4
    assert ds.interactions["rating"].tolist() == [4.0, 3.5, 5.0, 0.5, 2.0]
    toy = _item(ds, 1)
    assert (toy["title"], toy["year"]) == ("Toy Story", 1995)
    assert toy["genres"] == ["Adventure", "Animation", "Children"]
    # User tags are events, not item fields: an item's tags come from a training view.
    assert all(t == [] for t in ds.items["tags"])
    assert ds.tags is not None
    assert list(ds.tags.itertuples(index=False, name=None)) == [
        (1, 1, "pixar", 1), (2, 1, "pixar", 2), (3, 1, "fun", 3), (1, 1, "animation", 4),
        (2, 2, "politics, satire", 5)]
    president = _item(ds, 2)
    assert president["title"] == "American President, The"
    babylon = _item(ds, 3)
    assert babylon["title"] == "Babylon 5" and pd.isna(babylon["year"])
    assert babylon["genres"] == [] and babylon["tags"] == []
    fawlty = _item(ds, 4)
    assert (fawlty["title"], fawlty["year"]) == ("Fawlty Towers", 1975)
    assert ds.items["overview"].isna().all()
    links = ds.links
    assert links is not None
    assert [str(t) for t in links.dtypes] == ["int64", "Int64", "Int64"]
    assert links.set_index("item_id").loc[1, "imdb_id"] == 114709
    assert pd.isna(links.set_index("item_id").loc[3, "tmdb_id"])
    assert ds.users["user_id"].tolist() == [1, 2, 3]
    assert ds.user_feature_columns == []


def test_csv_zip_with_top_folder_matches_folder(csv_release, zipper, tmp_path: Path) -> None:
    folder = csv_release(name="plain")
    archive = zipper(folder, tmp_path / "ml-latest-small.zip", top="ml-latest-small")
    from_zip = load_dataset(archive)
    from_dir = load_dataset(folder)
    pd.testing.assert_frame_equal(from_zip.interactions, from_dir.interactions)
    pd.testing.assert_frame_equal(from_zip.items, from_dir.items)
    assert from_zip.name == "ml-latest-small"
    assert from_zip.source_sha256 == hashlib.sha256(archive.read_bytes()).hexdigest()
    assert from_zip.source_path == str(archive)
    # The folder hash covers the release files in name order.
    expected = hashlib.sha256(
        b"".join(
            (folder / n).read_bytes()
            for n in ("links.csv", "movies.csv", "ratings.csv", "tags.csv")
        )
    ).hexdigest()
    assert from_dir.source_sha256 == expected


def test_zip_without_top_folder_and_name_from_inner_folder(
    csv_release, zipper, tmp_path: Path
) -> None:
    folder = csv_release(name="x")
    flat = load_dataset(zipper(folder, tmp_path / "ml-25m.zip", top=None))
    assert flat.name == "ml-25m" and len(flat.interactions) == 5
    inner = load_dataset(zipper(folder, tmp_path / "download.zip", top="ml-32m"))
    assert inner.name == "ml-32m"


def test_release_name_falls_back_to_file_set(csv_release, ml1m_release, ml100k_release) -> None:
    assert load_dataset(csv_release(name="mydata")).name == "ml-latest-small"
    assert load_dataset(ml1m_release(name="a")).name == "ml-1m"
    assert load_dataset(ml100k_release(name="b")).name == "ml-100k"


def test_folder_holding_the_release_folder(csv_release, tmp_path: Path) -> None:
    csv_release(name="ml-latest-small")
    ds = load_dataset(tmp_path)
    assert ds.name == "ml-latest-small" and len(ds.interactions) == 5


def test_csv_without_optional_tags_and_links(csv_release) -> None:
    ds = load_dataset(csv_release(tags_csv=None, links_csv=None))
    assert ds.links is None and ds.tags is None
    assert all(t == [] for t in ds.items["tags"])


def test_header_only_tags_file(csv_release) -> None:
    ds = load_dataset(csv_release(tags_csv="userId,movieId,tag,timestamp\n"))
    assert ds.tags is not None and ds.tags.empty
    assert all(t == [] for t in ds.items["tags"])


def test_tag_events_drop_empty_tags_and_unknown_items(csv_release) -> None:
    rows = "1,1,  ,7\n1,99,ghost,8\n2,3, Space Opera ,9\n"
    ds = load_dataset(csv_release(tags_csv="userId,movieId,tag,timestamp\n" + rows))
    assert ds.tags is not None
    assert list(ds.tags.itertuples(index=False, name=None)) == [(2, 3, "space opera", 9)]


def test_duplicates_keep_latest_timestamp(csv_release) -> None:
    ratings = (
        "userId,movieId,rating,timestamp\n"
        "1,1,4.0,100\n"
        "1,1,2.0,50\n"  # older: dropped
        "1,2,3.0,10\n"
        "1,1,1.0,200\n"  # latest: kept
        "2,2,3.0,70\n"
        "2,2,4.5,70\n"
    )  # same timestamp: the later line wins
    ds = load_dataset(csv_release(ratings_csv=ratings))
    assert ds.info["duplicates_dropped"] == 3
    got = ds.interactions.set_index(["user_id", "item_id"])["rating"].to_dict()
    assert got == {(1, 1): 1.0, (1, 2): 3.0, (2, 2): 4.5}
    # Surviving rows keep file order.
    assert ds.interactions["timestamp"].tolist() == [10, 200, 70]


def test_min_rating_filters_and_restricts_users(csv_release) -> None:
    ds = load_dataset(csv_release(), min_rating=3.5)
    assert ds.interactions["rating"].tolist() == [4.0, 3.5, 5.0]
    assert ds.users["user_id"].tolist() == [1, 2]
    assert ds.info["ratings_below_min_dropped"] == 2
    assert len(ds.items) == 4  # the catalogue is kept whole


def test_ml1m_latin1_dat_files(ml1m_release) -> None:
    ds = load_dataset(ml1m_release())
    _assert_canonical(ds)
    assert ds.name == "ml-1m" and ds.links is None
    amelie = _item(ds, 20)
    assert amelie["title"] == "Amélie (Fabuleux destin d'Amélie Poulain, Le)"
    assert amelie["year"] == 2001 and amelie["genres"] == ["Comedy", "Romance"]
    assert _item(ds, 10)["genres"] == ["Animation", "Children's", "Comedy"]
    assert ds.interactions["rating"].tolist() == [5.0, 3.0, 4.0, 1.0]
    users = ds.users.set_index("user_id")
    assert users.index.tolist() == [1, 2]  # user 3 has no ratings
    assert users.loc[1].tolist() == ["F", 1, "K-12 student"]
    assert users.loc[2].tolist() == ["M", 56, "self-employed"]
    assert str(ds.users["age"].dtype) == "Int64"
    assert ds.user_feature_columns == ["gender", "age", "occupation"]


def test_ml1m_zip(ml1m_release, zipper, tmp_path: Path) -> None:
    archive = zipper(ml1m_release(name="src"), tmp_path / "ml-1m.zip", top="ml-1m")
    ds = load_dataset(archive)
    assert ds.name == "ml-1m" and len(ds.interactions) == 4
    assert ds.source_sha256 == hashlib.sha256(archive.read_bytes()).hexdigest()


def test_ml100k_u_files(ml100k_release) -> None:
    ds = load_dataset(ml100k_release())
    _assert_canonical(ds)
    assert ds.name == "ml-100k"
    toy = _item(ds, 1)
    assert (toy["title"], toy["year"]) == ("Toy Story", 1995)
    assert toy["genres"] == ["Animation", "Children's", "Comedy"]
    unknown = _item(ds, 2)
    assert unknown["title"] == "unknown" and pd.isna(unknown["year"])
    assert unknown["genres"] == []
    cafe = _item(ds, 3)
    assert cafe["title"] == "Café au lait" and cafe["year"] == 1994  # from the release date
    assert cafe["genres"] == ["Drama"]
    users = ds.users.set_index("user_id")
    assert users.loc[186].tolist() == ["F", 39, "executive"]
    assert users.index.tolist() == [22, 186, 196]


def test_ml100k_without_u_genre_uses_fixed_list(ml100k_release) -> None:
    ds = load_dataset(ml100k_release(u_genre=None))
    assert _item(ds, 1)["genres"] == ["Animation", "Children's", "Comedy"]


def test_bundled_ml_latest_small_zip(bundled_zip: Path) -> None:
    ds = load_dataset(bundled_zip)
    _assert_canonical(ds)
    assert ds.name == "ml-latest-small"
    assert ds.interactions["user_id"].nunique() == 610
    assert len(ds.interactions) == 100_836
    assert len(ds.items) == 9_742
    assert ds.interactions["item_id"].nunique() == 9_724
    assert ds.source_sha256 == DATASETS["ml-latest-small"]["sha256"]
    assert set(ds.interactions["rating"].unique()) == {x / 2 for x in range(1, 11)}
    toy = _item(ds, 1)
    assert (toy["title"], toy["year"]) == ("Toy Story", 1995)
    assert toy["genres"] == ["Adventure", "Animation", "Children", "Comedy", "Fantasy"]
    assert ds.tags is not None and len(ds.tags) == 3_683
    assert all(t == [] for t in ds.items["tags"])
    # With every rating as training data, Toy Story's raters tagged it "pixar" most.
    assert _item_of(training_items(ds, ds.interactions), 1)["tags"][0] == "pixar"
    assert ds.items["year"].notna().sum() > 9_700
    assert not any("(no genres listed)" in g for g in ds.items["genres"])
    assert ds.links is not None and len(ds.links) == 9_742
    assert int(ds.links["tmdb_id"].isna().sum()) == 8


@pytest.mark.parametrize("as_str", [True, False])
def test_path_may_be_str_or_path(csv_release, as_str: bool) -> None:
    folder = csv_release()
    ds = load_dataset(str(folder) if as_str else folder)
    assert ds.source_path == str(folder)
