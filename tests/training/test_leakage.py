"""Leakage tests: what a model must not see cannot change anything it computes.

Each test writes a small MovieLens release (ratings, movies, tags) twice: clean, and
poisoned with tag events a model must not see, each carrying a unique marker token
(``zzleak...``): tags on validation and test pairs (the test raters' own tags), tags
by users who never rated the item, tags written after the split's cutoff (time
splits) and, for cold items, every user tag of a held-out item. The poisoned split's
test interactions are also scrambled. Then the real code paths run on both: the split,
``EvalData.from_split``, the item texts and BERT encoder inputs, the ranker's feature
tables, the candidate lists and scores of the two-stage model and of its content
source. Everything must be identical, and no marker may reach any text.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from shared.model.ranker_features import build_tables
from shared.model.text import TextEncoder
from training.catalogue_data import catalogue_eval_data, serving_interactions, temporal_holdout
from training.data import load_dataset
from training.embeddings import embed_items, item_texts
from training.evaluation.base import EvalData
from training.models.ranker import RankerConfig
from training.models.ranking_sources import ContentRecommender, default_sources
from training.models.two_stage import TwoStageConfig, TwoStageRecommender
from training.splits import make_split

MARKER = "zzleak"
N_USERS, N_ITEMS, PER_USER = 40, 36, 16
T0, SPAN = 1_500_000_000, 1_000_000
VOCAB = ("funny", "dark", "classic", "slow", "quotable", "twist ending", "visual", "moving")
SPLIT_OPTS: dict[str, Any] = {"min_rating": 3.0, "k_core": 3, "seed": 7}


class RecordingEncoder:
    """The real BERT encoder, recording every text it is asked to embed."""

    def __init__(self, encoder: TextEncoder) -> None:
        self.inner = encoder
        self.seen: list[str] = []

    @property
    def model_id(self) -> str:
        return self.inner.model_id

    def encode(self, texts: Sequence[str], *, progress: bool = False) -> np.ndarray:
        self.seen.extend(texts)
        return self.inner.encode(texts, progress=progress)


@pytest.fixture(scope="module")
def encoder() -> TextEncoder:
    return TextEncoder()


def _ratings() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    rows = []
    for u in range(1, N_USERS + 1):
        for i in rng.choice(np.arange(1, N_ITEMS + 1), size=PER_USER, replace=False):
            rating = float(rng.choice([2.0, 3.0, 3.5, 4.0, 4.5, 5.0]))
            rows.append((u, int(i), rating, T0 + int(rng.integers(0, SPAN))))
    return pd.DataFrame(rows, columns=["userId", "movieId", "rating", "timestamp"])


def _clean_tags(ratings: pd.DataFrame) -> pd.DataFrame:
    """Ordinary tags: a third of the rated pairs, a minute after the rating."""
    rng = np.random.default_rng(4)
    pick = ratings.sample(frac=1 / 3, random_state=5)
    return pd.DataFrame({
        "userId": pick["userId"].to_numpy(), "movieId": pick["movieId"].to_numpy(),
        "tag": [VOCAB[j] for j in rng.integers(0, len(VOCAB), len(pick))],
        "timestamp": pick["timestamp"].to_numpy() + 60,
    })


def _write(folder: Path, ratings: pd.DataFrame, tags: pd.DataFrame) -> Path:
    folder.mkdir(parents=True)
    ratings.to_csv(folder / "ratings.csv", index=False)
    genres = ("Comedy", "Drama", "Horror", "Action|Thriller", "Animation|Children", "Romance")
    pd.DataFrame({
        "movieId": np.arange(1, N_ITEMS + 1),
        "title": [f"Film number {i} ({1980 + i})" for i in range(1, N_ITEMS + 1)],
        "genres": [genres[i % len(genres)] for i in range(1, N_ITEMS + 1)],
    }).to_csv(folder / "movies.csv", index=False)
    tags.to_csv(folder / "tags.csv", index=False)
    return folder


class Poison:
    """Marker-tagged tag events, each with its own token."""

    def __init__(self) -> None:
        self.rows: list[tuple[int, int, str, int]] = []

    def add(self, pairs: pd.DataFrame, ts: Sequence[int] | np.ndarray, what: str) -> None:
        for (u, i), t in zip(pairs[["user_id", "item_id"]].itertuples(index=False, name=None),
                             ts, strict=True):
            self.rows.append((int(u), int(i), f"{MARKER}{what}{len(self.rows)}", int(t)))

    def frame(self) -> pd.DataFrame:
        assert self.rows, "the poison must not be empty"
        return pd.DataFrame(self.rows, columns=["userId", "movieId", "tag", "timestamp"])


def _held_out_pairs(poison: Poison, split) -> None:
    """The validation and test raters' own tags, right after their interaction."""
    for part in ("valid", "test"):
        df = getattr(split, part)
        poison.add(df, df["timestamp"].to_numpy() + 30, part)


def _non_rater_tags(poison: Poison, split, items: np.ndarray) -> None:
    """Tags on ``items`` by users with training data who never rated them."""
    rated = set(zip(split.train["user_id"], split.train["item_id"], strict=True))
    for part in (split.valid, split.test):
        rated |= set(zip(part["user_id"], part["item_id"], strict=True))
    users = np.unique(split.train["user_id"].to_numpy())
    pairs = [(u, i) for i in items for u in users[:10] if (u, i) not in rated]
    df = pd.DataFrame(pairs, columns=["user_id", "item_id"])
    poison.add(df, np.full(len(df), T0 + SPAN // 2), "nonrater")


def _scrambled_test(split):
    """The same split with each test row's item (and time) moved to another row."""
    rng = np.random.default_rng(11)
    test = split.test.copy()
    test["item_id"] = rng.permutation(test["item_id"].to_numpy())
    test["timestamp"] = rng.permutation(test["timestamp"].to_numpy())
    return dataclasses.replace(split, test=test)


def _two_stage(content: np.ndarray) -> TwoStageRecommender:
    cfg = TwoStageConfig(depth=15, max_candidates=15, min_candidates=8, n_folds=1,
                         ranker=RankerConfig(epochs=2, ensemble=1, hidden_units=(16,),
                                             content_dim=8, progress=False))
    return TwoStageRecommender(
        default_sources(content, names=["ease", "item_knn", "rp3beta", "content",
                                          "popularity"]),
        content, cfg, name="leak-check")


@dataclasses.dataclass
class Fingerprint:
    """Everything a model computes from an EvalData that must not depend on hidden data."""

    texts: list[str]
    encoder_inputs: list[str]
    content: np.ndarray
    tables: dict[str, Any]
    candidates: list[list[int]]
    content_scores: np.ndarray
    two_stage_scores: np.ndarray
    candidate_items: np.ndarray | None


def _fingerprint(data: EvalData, encoder: TextEncoder, cache: Path) -> Fingerprint:
    import keras

    recorder = RecordingEncoder(encoder)
    content = embed_items(data.items, recorder, cache, progress=False)
    tables = build_tables(data.items, data.users, data.train_interactions, content,
                          ["ease", "item_knn", "rp3beta", "content", "popularity"])
    users = np.arange(data.n_users)
    source = ContentRecommender(content)
    source.fit(data)
    keras.utils.set_random_seed(5)
    model = _two_stage(content)
    model.fit(data)
    return Fingerprint(
        texts=item_texts(data.items),
        encoder_inputs=sorted(recorder.seen),
        content=content,
        tables={f.name: getattr(tables, f.name) for f in dataclasses.fields(tables)},
        candidates=[c.item_idx.tolist() for c in model.candidates(users)],
        content_scores=source.score(users),
        two_stage_scores=model.score(users),
        candidate_items=data.candidate_items,
    )


def _assert_same(clean: Fingerprint, poisoned: Fingerprint) -> None:
    leaked = [t for t in poisoned.texts if MARKER in t]
    assert not leaked, f"{len(leaked)} item texts carry hidden tags, e.g. {leaked[:2]}"
    assert not [t for t in poisoned.encoder_inputs if MARKER in t]
    assert poisoned.texts == clean.texts
    assert poisoned.encoder_inputs == clean.encoder_inputs
    np.testing.assert_array_equal(poisoned.content, clean.content)
    for name, value in clean.tables.items():
        other = poisoned.tables[name]
        if isinstance(value, np.ndarray):
            np.testing.assert_array_equal(other, value, err_msg=f"feature table {name}")
        else:
            assert other == value, f"feature table {name}"
    assert poisoned.candidates == clean.candidates
    np.testing.assert_array_equal(poisoned.content_scores, clean.content_scores)
    np.testing.assert_allclose(poisoned.two_stage_scores, clean.two_stage_scores,
                               rtol=0, atol=1e-6)
    np.testing.assert_array_equal(np.asarray(poisoned.candidate_items),
                                  np.asarray(clean.candidate_items))


def _check_split(kind: str, tmp_path: Path, encoder: TextEncoder, extra) -> EvalData:
    """Clean vs poisoned release through the split and every model input."""
    ratings = _ratings()
    tags = _clean_tags(ratings)
    ds = load_dataset(_write(tmp_path / "clean", ratings, tags))
    split = make_split(ds, kind, **SPLIT_OPTS)
    poison = Poison()
    _held_out_pairs(poison, split)
    extra(poison, split)
    bad = load_dataset(_write(tmp_path / "poisoned", ratings,
                              pd.concat([tags, poison.frame()], ignore_index=True)))
    bad_split = make_split(bad, kind, **SPLIT_OPTS)
    for part in ("train", "valid", "test"):
        pd.testing.assert_frame_equal(getattr(bad_split, part), getattr(split, part))
    data = EvalData.from_split(ds, split)
    bad_data = EvalData.from_split(bad, _scrambled_test(bad_split))
    assert any(len(t) for t in data.items["tags"]), "no training tag reached any item"
    _assert_same(_fingerprint(data, encoder, tmp_path / "emb-clean"),
                 _fingerprint(bad_data, encoder, tmp_path / "emb-poisoned"))
    return data


def test_random_split_sees_no_held_out_tags(tmp_path: Path, encoder: TextEncoder) -> None:
    def extra(poison: Poison, split) -> None:
        _non_rater_tags(poison, split, np.unique(split.test["item_id"])[:6])

    _check_split("random", tmp_path, encoder, extra)


def test_temporal_split_sees_nothing_after_the_cutoff(tmp_path: Path,
                                                      encoder: TextEncoder) -> None:
    def extra(poison: Poison, split) -> None:
        _non_rater_tags(poison, split, np.unique(split.test["item_id"])[:6])
        # Tags on training pairs written in the test period: at its first interaction
        # (the cutoff's boundary) and after everything.
        train = split.train.drop_duplicates("item_id")
        first_test = int(split.test["timestamp"].min())
        poison.add(train, np.full(len(train), first_test), "atcutoff")
        poison.add(train, np.full(len(train), T0 + 2 * SPAN), "future")

    _check_split("temporal", tmp_path, encoder, extra)


def test_temporal_user_split_sees_no_later_tags(tmp_path: Path, encoder: TextEncoder) -> None:
    def extra(poison: Poison, split) -> None:
        # Each user's tags on their own training items, written when their validation
        # and their test data start: after their training data ends.
        for part in ("valid", "test"):
            first = getattr(split, part).groupby("user_id")["timestamp"].min()
            train = split.train[split.train["user_id"].isin(first.index)]
            train = train.drop_duplicates("user_id")
            poison.add(train, train["user_id"].map(first).to_numpy(), f"later{part}")

    _check_split("temporal-user", tmp_path, encoder, extra)


def test_cold_items_have_no_user_tags(tmp_path: Path, encoder: TextEncoder) -> None:
    def extra(poison: Poison, split) -> None:
        assert split.cold_items is not None and len(split.cold_items)
        _non_rater_tags(poison, split, split.cold_items)

    data = _check_split("cold-items", tmp_path, encoder, extra)
    cold = data.candidate_items
    assert cold is not None and len(cold)
    assert all(tags == [] for tags in data.items["tags"].iloc[cold])


def test_serving_catalogue_sees_only_training_pair_tags(tmp_path: Path) -> None:
    """``hybridrec train``'s catalogue view: tags of its training pairs only."""
    ratings = _ratings()
    tags = _clean_tags(ratings)
    ds = load_dataset(_write(tmp_path / "clean", ratings, tags))
    train, valid = temporal_holdout(serving_interactions(ds, 3.0), 0.2)
    poison = Poison()
    poison.add(valid, valid["timestamp"].to_numpy() + 30, "valid")
    low = ds.interactions[ds.interactions["rating"] < 3.0]
    poison.add(low, low["timestamp"].to_numpy() + 30, "lowrating")
    # Each user's tag on a training item, written when their validation data starts.
    first_valid = valid.groupby("user_id")["timestamp"].min()
    late = train[train["user_id"].isin(first_valid.index)].drop_duplicates("user_id")
    poison.add(late, late["user_id"].map(first_valid).to_numpy(), "late")
    bad = load_dataset(_write(tmp_path / "poisoned", ratings,
                              pd.concat([tags, poison.frame()], ignore_index=True)))
    clean_items = catalogue_eval_data(ds, train, valid, seed=1).items
    bad_items = catalogue_eval_data(bad, train, valid, seed=1).items
    assert any(len(t) for t in clean_items["tags"]), "no training tag reached any item"
    texts = item_texts(bad_items)
    assert not [t for t in texts if MARKER in t]
    assert texts == item_texts(clean_items)
