"""A small real dataset and bundle for service tests.

The dataset is a slice of the committed ml-latest-small zip (the most-rated
movies and the users who rated many of them), written in the ml-latest-small CSV
format so the real reader loads it; the bundle is trained with the real pipeline
(BERT, two-tower, ranker, Annoy and HNSW indexes) in quick mode.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pandas as pd

PROJECT_ROOT = Path(__file__).resolve().parents[2]
ZIP = PROJECT_ROOT / "data" / "ml-latest-small.zip"


def _read(zf: zipfile.ZipFile, name: str) -> pd.DataFrame:
    return pd.read_csv(io.BytesIO(zf.read(f"ml-latest-small/{name}")))


def write_small_movielens(dest: Path, *, n_items: int = 400, n_users: int = 120) -> Path:
    """Write a slice of ml-latest-small (CSV format) into ``dest``; returns the folder."""
    with zipfile.ZipFile(ZIP) as zf:
        ratings = _read(zf, "ratings.csv")
        movies = _read(zf, "movies.csv")
        tags = _read(zf, "tags.csv")
        links = _read(zf, "links.csv")
    top_items = ratings["movieId"].value_counts().index[:n_items]
    r = ratings[ratings["movieId"].isin(top_items)]
    top_users = r["userId"].value_counts().index[:n_users]
    r = r[r["userId"].isin(top_users)]
    folder = dest / "ml-latest-small"
    folder.mkdir(parents=True, exist_ok=True)
    keep = set(r["movieId"])
    r.to_csv(folder / "ratings.csv", index=False)
    movies[movies["movieId"].isin(keep)].to_csv(folder / "movies.csv", index=False)
    tags[tags["movieId"].isin(keep) & tags["userId"].isin(top_users)].to_csv(
        folder / "tags.csv", index=False
    )
    links[links["movieId"].isin(keep)].to_csv(folder / "links.csv", index=False)
    return folder


FEEDBACK_EVENTS = "feedback-events.parquet"  # beside the artifacts root

QUICK_CONFIG = {
    "ann_n_trees": 10,
    "hnsw": True,  # HNSW graphs beside the Annoy indexes, so both serving paths are tested
    "popular_size": 200,
    "two_tower": {"epochs": 3, "verbose": 0},
    "two_stage": {
        "depth": 60,
        "max_candidates": 100,
        "min_candidates": 30,
        "ranker": {"epochs": 3},
    },
}


def train_small_bundle(tmp: Path) -> Path:
    """Train the real pipeline on the small slice; returns the artifacts root."""
    from training.pipeline import run_train

    data = write_small_movielens(tmp / "data")
    config = tmp / "train-config.json"
    config.write_text(json.dumps(QUICK_CONFIG))
    out = tmp / "artifacts"
    events = write_feedback_events(data, tmp)
    run_train(data=str(data), out=str(out), config_path=str(config), seed=7, events=[str(events)])
    return out


def write_feedback_events(data: Path, tmp: Path, n: int = 3) -> Path:
    """Live feedback for the slice's last user, exported like ``hybridrec events export``.

    ``n`` rating events (5 stars, later than every rating) on items the user has not
    rated, stored through the real event log (its spool) and exported to
    ``tmp/feedback-events.parquet``, which the bundle is trained with (``--events``).
    """
    import asyncio

    from shared.stores.events import EventLog
    from shared.stores.export import export_events

    ratings = pd.read_csv(data / "ratings.csv")
    user = int(ratings["userId"].max())
    seen = set(ratings.loc[ratings["userId"] == user, "movieId"])
    unseen = [int(i) for i in sorted(set(ratings["movieId"]) - seen)][:n]
    start = int(ratings["timestamp"].max()) + 60

    async def _store() -> None:
        log = EventLog(None, tmp / "feedback-state")
        for j, item in enumerate(unseen):
            await log.append(
                {
                    "user_id": user,
                    "item_id": item,
                    "type": "rating",
                    "rating": 5.0,
                    "timestamp": start + j,
                }
            )

    asyncio.run(_store())
    out = tmp / FEEDBACK_EVENTS
    export_events(out, redis_url=None, state_dir=str(tmp / "feedback-state"))
    return out


def next_item_wins(bundle_root: Path, n_users: int = 60, seed: int = 0) -> int:
    """Of ``n_users`` known users, how many have their query vector (from the history less
    its last 5 items) closer, on average, to those 5 items than to 5 random ones.

    A random model wins about half; the tests ask for clearly more.
    """
    import numpy as np

    from shared.contracts import bundle_layout as L
    from shared.contracts.bundle import load_bundle
    from shared.model.features import FeatureEncoder
    from shared.model.query_serving import QueryTowerRunner

    bundle = load_bundle(bundle_root)
    users = bundle.load_parquet(L.USERS)
    encoder = FeatureEncoder.load(bundle.path(L.FEATURES))
    runner = QueryTowerRunner(bundle.path(L.QUERY_TOWER))
    vectors = bundle.load_npy(L.ITEM_VECTORS)
    rng = np.random.default_rng(seed)
    wins = 0
    for _, row in users.head(n_users).iterrows():
        hist = encoder.item_index(list(row.history))
        vec = runner.encode(encoder, [str(row.user_id)], [hist[:-5]])[0]
        pos = vectors[hist[-5:]] @ vec
        neg = vectors[rng.integers(0, len(vectors), 5)] @ vec
        wins += int(pos.mean() > neg.mean())
    return wins
