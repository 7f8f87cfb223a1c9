"""``hybridrec data synth``: seeded, MovieLens-shaped, Zipf-popular, learnable, valid."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hybridrec import cli
from shared.contracts.errors import ConfigError, DataError
from training.data import load_dataset
from training.data.synth import RATING_SHARE, RATINGS, spec_for, write_synth

# 60k interactions, 300 users, 3000 items: large enough for the statistics below, < 2 s.
SMALL = {"interactions": 60_000, "users": 300, "items": 3_000}


@pytest.fixture(scope="module")
def synth_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "ds"
    assert cli.main(["data", "synth", str(out), "--like", "ml-25m", "--seed", "3",
                     "--interactions", "60000", "--users", "300", "--items", "3000"]) == 0
    return out


def _frames(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    return (pd.read_parquet(folder / "interactions.parquet"),
            pd.read_parquet(folder / "items.parquet"))


def test_same_seed_same_files_other_seed_other_data(synth_dir: Path, tmp_path: Path) -> None:
    spec = spec_for("ml-25m", **SMALL)
    again = write_synth(spec, tmp_path / "again", seed=3, progress=False)
    other = write_synth(spec, tmp_path / "other", seed=4, progress=False)
    a_inter, a_items = _frames(synth_dir)
    b_inter, b_items = _frames(again)
    pd.testing.assert_frame_equal(a_inter, b_inter)
    pd.testing.assert_frame_equal(a_items, b_items)
    c_inter, _ = _frames(other)
    assert not a_inter["item_id"].equals(c_inter["item_id"])


def test_shape_ids_ratings_and_timestamps_are_movielens_like(synth_dir: Path) -> None:
    inter, items = _frames(synth_dir)
    # within 0.5% of the target: duplicate (user, item) draws that collide twice are dropped
    assert 0.995 * 60_000 <= len(inter) <= 60_000
    assert inter["user_id"].nunique() == 300 and len(items) == 3_000
    assert not inter.duplicated(["user_id", "item_id"]).any()
    assert inter.groupby("user_id").size().min() >= 19  # MovieLens: at least 20 per user
    assert set(inter["event"]) == {"rating"}
    assert set(np.unique(inter["value"])) <= set(RATINGS)
    share = inter["value"].value_counts(normalize=True).reindex(RATINGS).to_numpy()
    np.testing.assert_allclose(share, RATING_SHARE / RATING_SHARE.sum(), atol=0.01)
    years = pd.to_datetime(inter["timestamp"], unit="s").dt.year
    assert years.min() >= 1996 and years.max() <= 2019
    assert items["title"].is_unique and all(len(g) >= 1 for g in items["genres"])
    info = json.loads((synth_dir / "synth.json").read_text())
    assert info["seed"] == 3 and info["n_interactions_written"] == len(inter)


def test_popularity_is_zipf_like(synth_dir: Path) -> None:
    inter, _ = _frames(synth_dir)
    counts = np.sort(inter["item_id"].value_counts().to_numpy())[::-1].astype(float)
    ranks = np.arange(1, len(counts) + 1)
    head = slice(9, 1000)  # a log-log line over the head and middle of the curve
    slope = np.polyfit(np.log(ranks[head]), np.log(counts[head]), 1)[0]
    assert -1.3 < slope < -0.4, slope
    # the 10% most popular items get > 30% (300 users cap an item at 300 ratings here;
    # at 1M interactions and 62k items the top 1% get 22%, the top 10% half)
    assert counts[:300].sum() / counts.sum() > 0.3


def test_users_stick_to_their_topics_so_there_is_something_to_learn(synth_dir: Path) -> None:
    """A user's items share genres far more than random pairs of items would."""
    inter, items = _frames(synth_dir)
    first_genre = dict(zip(items["item_id"], (g[0] for g in items["genres"]), strict=True))
    g = inter.assign(genre=inter["item_id"].map(first_genre))
    per_user = g.groupby("user_id")["genre"].agg(lambda s: s.value_counts(normalize=True).iloc[0])
    overall = g["genre"].value_counts(normalize=True).iloc[0]
    assert per_user.mean() > overall + 0.1
    # and high ratings go more often to items of the user's favourite genre
    fav = g.groupby("user_id")["genre"].agg(lambda s: s.value_counts().index[0])
    in_fav = g["genre"].to_numpy() == g["user_id"].map(fav).to_numpy()
    assert g["value"][in_fav].mean() > g["value"][~in_fav].mean() + 0.1


def test_output_validates_and_loads_as_a_dataset(synth_dir: Path) -> None:
    assert cli.main(["data", "validate", str(synth_dir)]) == 0
    ds = load_dataset(synth_dir)
    assert ds.name == "synth-ml-25m-60k"
    assert ds.info["id_maps"] == {"users": "numeric", "items": "numeric"}
    assert ds.items["year"].notna().all() and ds.items["genres"].map(len).min() >= 1
    assert len(ds.interactions) == len(pd.read_parquet(synth_dir / "interactions.parquet"))


def test_presets_and_refusals(tmp_path: Path) -> None:
    full = spec_for("ml-25m")
    assert (full.n_users, full.n_items, full.n_interactions) == (162_541, 62_423, 25_000_095)
    five = spec_for("ml-25m", interactions=5_000_000)
    assert five.n_users == round(162_541 * 5_000_000 / 25_000_095) and five.n_items == 62_423
    with pytest.raises(ConfigError, match="unknown --like"):
        spec_for("ml-999")
    with pytest.raises(ConfigError, match="20 each"):
        spec_for("ml-25m", interactions=1_000, users=100)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(DataError, match="not empty"):
        write_synth(spec_for("ml-25m", **SMALL), tmp_path / "full", progress=False)
