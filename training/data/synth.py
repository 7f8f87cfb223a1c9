"""``hybridrec data synth``: a seeded, MovieLens-shaped dataset in the project's own format.

The real large releases (ml-25m, ml-32m) are not redistributed and may not be reachable, so
training at scale is measured on a generated stand-in of the same shape (users, items,
interactions) with the properties the models depend on:

* **Zipf popularity**: item *i* (in a random order) has weight ``rank ** -zipf``, and users'
  activity is heavy-tailed (log-normal, at least ``min_per_user`` ratings, like MovieLens);
* **latent structure**: items belong to one of ``n_topics`` topics, each topic to one of the
  MovieLens genres (the item's first genre; one or two more come from related genres). A user
  likes a few topics (Dirichlet weights); each interaction picks one of them (or, with
  probability ``noise``, any item by popularity), then an item of the topic by popularity.
  Collaborative models can learn the topics; content models see the genres;
* **ratings** follow MovieLens-25M's half-star distribution exactly, ranked by a score that is
  higher for in-taste items, for good items (an item quality) and for generous users, so the
  ``min_rating`` cut keeps mostly in-taste interactions;
* **timestamps**: each user is active from a start date (1996..2019, more users later) for a
  heavy-tailed span; a user's ratings are spread across it.

Titles are made of words chosen by topic (so BERT text carries topic signal), with the year
in the title as in MovieLens. Output: ``interactions.parquet`` (``user_id``, ``item_id``
as decimal text, ``timestamp``, ``event`` ``rating``, ``value``), ``items.parquet``
(``title``, ``year``, ``genres`` list) and ``schema.yaml``. Users are generated in chunks
and written with one Parquet writer, so memory stays at a chunk plus the item tables.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from shared.contracts.errors import ConfigError, DataError

GENRES = ("Action", "Adventure", "Animation", "Children", "Comedy", "Crime", "Documentary",
          "Drama", "Fantasy", "Film-Noir", "Horror", "IMAX", "Musical", "Mystery", "Romance",
          "Sci-Fi", "Thriller", "War", "Western")
GENRE_SHARE = np.array([7.5, 4.3, 2.3, 2.4, 16.7, 5.4, 4.9, 25.6, 2.6, 0.6, 5.7, 0.3, 1.7,
                        2.9, 7.9, 3.7, 8.2, 2.0, 1.3])
"""Roughly each genre's share of ml-25m's first genres (percent); topics follow it."""
RATINGS = np.arange(1, 11) / 2.0
RATING_SHARE = np.array([1.57, 3.15, 1.60, 6.64, 5.04, 19.6, 12.6, 26.6, 8.48, 14.5])
"""ml-25m's share of each half-star rating 0.5..5 (percent)."""
T_START, T_END = 820_454_400, 1_574_000_000
"""1996-01-01 .. 2019-11-17 UTC, the span of ml-25m."""
WORDS = ("river", "shadow", "garden", "empire", "night", "voyage", "secret", "winter", "letters",
         "island", "machine", "crown", "harbour", "silence", "orchard", "atlas", "storm",
         "mirror", "desert", "city", "ghost", "summer", "star", "wolf", "blood", "love", "road",
         "king", "dream", "fire", "ocean", "heart", "war", "moon", "house", "game", "stranger",
         "lost", "dark", "last", "first", "golden", "silver", "broken", "hidden", "wild",
         "little", "long", "red", "blue", "iron", "glass", "paper", "stone", "sky", "bridge",
         "garden", "train", "circus", "station", "forest", "mountain", "valley", "tower")


@dataclasses.dataclass(frozen=True)
class SynthSpec:
    """The shape and structure of a generated dataset.

    Attributes:
        name: Dataset name written in ``schema.yaml``.
        n_users: Users (every one has at least ``min_per_user`` interactions).
        n_items: Items in the catalogue (the least popular may get no interaction).
        n_interactions: Target number of interactions (the result is within a fraction of a
            percent: duplicate (user, item) draws are redrawn once, then dropped).
        n_topics: Latent topics (each has one main genre); 0 = one per 200 items (>= 20).
        topics_per_user: Topics a user likes.
        zipf: Exponent of item popularity, ``weight = rank ** -zipf``.
        noise: Share of interactions drawn by popularity alone, outside the user's topics.
        min_per_user: Least interactions per user (MovieLens: 20).
    """

    name: str
    n_users: int
    n_items: int
    n_interactions: int
    n_topics: int = 0
    topics_per_user: int = 6
    zipf: float = 0.9
    noise: float = 0.2
    min_per_user: int = 20

    def __post_init__(self) -> None:
        if not self.n_topics:
            object.__setattr__(self, "n_topics", max(20, self.n_items // 200))


PRESETS: dict[str, SynthSpec] = {
    "ml-25m": SynthSpec("synth-ml-25m", 162_541, 62_423, 25_000_095),
    "ml-32m": SynthSpec("synth-ml-32m", 200_948, 87_585, 32_000_204),
    "ml-1m": SynthSpec("synth-ml-1m", 6_040, 3_706, 1_000_209),
    "ml-latest-small": SynthSpec("synth-ml-latest-small", 610, 9_742, 100_836),
}
"""``--like`` shapes: the MovieLens releases' users, items and ratings."""


def spec_for(like: str, *, interactions: int | None = None, users: int | None = None,
             items: int | None = None) -> SynthSpec:
    """The preset ``like``, optionally scaled: ``interactions`` alone scales users with it."""
    if like not in PRESETS:
        raise ConfigError(f"unknown --like {like!r}; choose one of {sorted(PRESETS)}")
    base = PRESETS[like]
    n_inter = interactions or base.n_interactions
    n_users = users or max(1, round(base.n_users * n_inter / base.n_interactions))
    n_items = items or base.n_items
    if n_inter < n_users * base.min_per_user:
        raise ConfigError(f"{n_inter} interactions cannot give {n_users} users "
                          f"{base.min_per_user} each; lower --users")
    if n_inter > n_users * n_items // 2:
        raise ConfigError("more than half of all (user, item) pairs; raise --users or --items")
    name = base.name if (interactions, users, items) == (None, None, None) else (
        f"{base.name}-{_short(n_inter)}")
    return dataclasses.replace(base, name=name, n_users=n_users, n_items=n_items,
                               n_interactions=n_inter, n_topics=0)


def _short(n: int) -> str:
    return f"{n / 1e6:g}M" if n >= 1_000_000 else f"{n / 1e3:g}k"


@dataclasses.dataclass
class _World:
    """Item-side structure shared by every user chunk."""

    topic_of_item: np.ndarray
    popularity: np.ndarray  # per item, sums to 1
    quality: np.ndarray  # per item, standard normal
    topic_items: list[np.ndarray]  # items of each topic
    topic_cdf: list[np.ndarray]  # cumulative popularity within each topic
    topic_weight: np.ndarray  # how often users pick each topic (sums to 1)
    global_cdf: np.ndarray


def _world(spec: SynthSpec, rng: np.random.Generator) -> tuple[_World, pd.DataFrame]:
    n = spec.n_items
    popularity = np.empty(n)
    popularity[rng.permutation(n)] = np.arange(1, n + 1, dtype=float) ** -spec.zipf
    popularity /= popularity.sum()
    genre_p = GENRE_SHARE / GENRE_SHARE.sum()
    topic_genre = rng.choice(len(GENRES), spec.n_topics, p=genre_p)
    topic_size = rng.dirichlet(np.full(spec.n_topics, 2.0))
    topic_of_item = rng.choice(spec.n_topics, n, p=topic_size)
    topic_items = [np.flatnonzero(topic_of_item == t) for t in range(spec.n_topics)]
    topic_cdf, topic_mass = [], np.zeros(spec.n_topics)
    for t, members in enumerate(topic_items):
        mass = popularity[members]
        topic_mass[t] = mass.sum()
        topic_cdf.append(np.cumsum(mass) / mass.sum() if len(members) else np.ones(0))
    world = _World(topic_of_item=topic_of_item, popularity=popularity,
                   quality=rng.standard_normal(n), topic_items=topic_items, topic_cdf=topic_cdf,
                   topic_weight=topic_mass / topic_mass.sum(), global_cdf=np.cumsum(popularity))
    return world, _items(spec, world, topic_genre, rng)


def _items(spec: SynthSpec, world: _World, topic_genre: np.ndarray,
           rng: np.random.Generator) -> pd.DataFrame:
    """Titles from topic words, years, genres: the first from the topic, up to two more."""
    n, n_words = spec.n_items, len(WORDS)
    topic_words = rng.integers(0, n_words, (spec.n_topics, 4))
    t = world.topic_of_item
    first = topic_words[t, rng.integers(0, 4, n)]
    second = np.where(rng.random(n) < 0.6, topic_words[t, rng.integers(0, 4, n)],
                      rng.integers(0, n_words, n))
    third = rng.integers(0, n_words, n)
    years = np.clip(np.round(2019 - rng.exponential(14.0, n)), 1902, 2019).astype(int)
    # Each topic has a related genre; items add it (and sometimes a random one).
    related = rng.integers(0, len(GENRES), spec.n_topics)
    more = rng.random(n)
    titles, genres = [], []
    for i in range(n):
        words = (WORDS[first[i]], WORDS[second[i]], WORDS[third[i]])
        titles.append(f"The {words[0].title()} of {words[1].title()} {words[2].title()} "
                      f"{i + 1} ({years[i]})")
        g = [GENRES[topic_genre[t[i]]]]
        if more[i] < 0.55 and related[t[i]] != topic_genre[t[i]]:
            g.append(GENRES[related[t[i]]])
        if more[i] < 0.15:
            extra = GENRES[(topic_genre[t[i]] + 1 + i) % len(GENRES)]
            if extra not in g:
                g.append(extra)
        genres.append(g)
    return pd.DataFrame({"item_id": [str(i + 1) for i in range(n)], "title": titles,
                         "year": years, "genres": genres})


def _activity(spec: SynthSpec, rng: np.random.Generator) -> np.ndarray:
    """Interactions per user: log-normal, at least ``min_per_user``, summing to the target."""
    raw = rng.lognormal(0.0, 1.1, spec.n_users)
    extra = spec.n_interactions - spec.n_users * spec.min_per_user
    counts = spec.min_per_user + np.floor(raw / raw.sum() * extra).astype(np.int64)
    counts = np.minimum(counts, spec.n_items // 2)
    short = spec.n_interactions - int(counts.sum())
    if short > 0:  # hand out the remainder one by one to the most active users below the cap
        room = np.flatnonzero(counts < spec.n_items // 2)
        order = room[np.argsort(-raw[room], kind="stable")]
        reps = int(np.ceil(short / max(len(order), 1)))
        for _ in range(reps):
            take = order[:short]
            counts[take] += 1
            short -= len(take)
            if short <= 0:
                break
    return counts


def _draw(world: _World, user_topics: np.ndarray, user_cdf: np.ndarray, rows_user: np.ndarray,
          noise: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One item per row: a topic of the row's user then an item by popularity (or noise)."""
    slot = (rng.random(len(rows_user))[:, None] > user_cdf[rows_user]).sum(axis=1)
    slot = np.minimum(slot, user_topics.shape[1] - 1)
    topic = user_topics[rows_user, slot]
    items = np.empty(len(rows_user), dtype=np.int64)
    u = rng.random(len(rows_user))
    for t in np.unique(topic):
        rows = np.flatnonzero(topic == t)
        pos = np.searchsorted(world.topic_cdf[t], u[rows], side="right")
        items[rows] = world.topic_items[t][np.minimum(pos, len(world.topic_items[t]) - 1)]
    random_rows = rng.random(len(rows_user)) < noise
    pos = np.searchsorted(world.global_cdf, rng.random(int(random_rows.sum())), side="right")
    items[random_rows] = np.minimum(pos, len(world.popularity) - 1)
    return items, ~random_rows


_REDRAWS = 12


def _chunk(spec: SynthSpec, world: _World, first_user: int, counts: np.ndarray,
           rng: np.random.Generator) -> pd.DataFrame:
    """Interactions of the users ``first_user + 0 .. len(counts) - 1``."""
    n_users = len(counts)
    k = spec.topics_per_user
    topics = rng.choice(len(world.topic_weight), (n_users, k), p=world.topic_weight)
    weights = rng.dirichlet(np.full(k, 0.7), n_users)
    cdf = np.cumsum(weights, axis=1)
    rows_user = np.repeat(np.arange(n_users), counts)
    items, in_taste = _draw(world, topics, cdf, rows_user, spec.noise, rng)
    # One row per (user, item): redraw duplicates in the user's topics, then (a user who
    # exhausted them) by popularity, then uniformly; drop what still collides.
    for attempt in range(_REDRAWS):
        key = rows_user * spec.n_items + items
        _, first = np.unique(key, return_index=True)
        dup = np.ones(len(key), dtype=bool)
        dup[first] = False
        if not dup.any():
            break
        n_dup = int(dup.sum())
        if attempt < 3:
            items[dup], in_taste[dup] = _draw(world, topics, cdf, rows_user[dup], spec.noise, rng)
        elif attempt < 6:
            pos = np.searchsorted(world.global_cdf, rng.random(n_dup), side="right")
            items[dup], in_taste[dup] = np.minimum(pos, spec.n_items - 1), False
        elif attempt < _REDRAWS - 1:
            items[dup], in_taste[dup] = rng.integers(0, spec.n_items, n_dup), False
        else:
            keep = ~dup
            rows_user, items, in_taste = rows_user[keep], items[keep], in_taste[keep]
    user_bias = rng.normal(0.0, 0.6, n_users)
    score = (1.2 * in_taste + 0.5 * world.quality[items] + user_bias[rows_user]
             + rng.normal(0.0, 0.8, len(items)))
    ranks = np.empty(len(score), dtype=np.int64)
    ranks[np.argsort(score, kind="stable")] = np.arange(len(score))
    cuts = np.cumsum(RATING_SHARE / RATING_SHARE.sum())[:-1] * len(score)
    rating = RATINGS[np.searchsorted(cuts, ranks, side="right")]
    # Activity spans: start (more users later), heavy-tailed length, ratings spread across it.
    start = T_START + (T_END - T_START) * rng.beta(1.3, 1.0, n_users)
    span = np.minimum(rng.lognormal(14.5, 2.5, n_users), T_END - start)
    ts = start[rows_user] + span[rows_user] * rng.random(len(items))
    return pd.DataFrame({
        "user_id": (rows_user + first_user + 1).astype(str),
        "item_id": (items + 1).astype(str),
        "timestamp": ts.astype(np.int64),
        "event": "rating",
        "value": rating.astype(np.float32),
    })


def _chunks(spec: SynthSpec, world: _World, counts: np.ndarray, seed: int,
            rows_per_chunk: int) -> Iterator[pd.DataFrame]:
    ends = np.searchsorted(np.cumsum(counts), np.arange(rows_per_chunk, counts.sum(),
                                                        rows_per_chunk))
    bounds = [0, *sorted(set(int(e) + 1 for e in ends if e + 1 < len(counts))), len(counts)]
    for i, (a, b) in enumerate(itertools.pairwise(bounds)):
        rng = np.random.default_rng([seed, 1, i])
        yield _chunk(spec, world, a, counts[a:b], rng)


SCHEMA_YAML = """\
# generated by `hybridrec data synth` (training/data/synth.py); docs/own-data.md
name: {name}
interactions:
  file: interactions.parquet
items:
  file: items.parquet
  attributes:
    year: numeric
    genres: {{type: categorical, list: true}}
"""


def write_synth(spec: SynthSpec, out: str | Path, *, seed: int = 0,
                rows_per_chunk: int = 2_000_000, progress: bool = True) -> Path:
    """Generate ``spec`` with ``seed`` into the new folder ``out``; returns the folder.

    The same spec, seed and ``rows_per_chunk`` give the same files: each chunk of users
    draws from its own seeded stream, so the chunk boundaries are part of the recipe.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = Path(out)
    if folder.exists() and any(folder.iterdir()):
        raise DataError("exists and is not empty; pass a new folder", path=str(folder))
    folder.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    rng = np.random.default_rng([seed, 0])
    world, items = _world(spec, rng)
    items.to_parquet(folder / "items.parquet", index=False)
    counts = _activity(spec, rng)
    tmp = folder / ".interactions.parquet.tmp"
    written = 0
    writer: pq.ParquetWriter | None = None
    try:
        for frame in _chunks(spec, world, counts, seed, rows_per_chunk):
            table = pa.Table.from_pandas(frame, preserve_index=False)
            if writer is None:
                writer = pq.ParquetWriter(tmp, table.schema)
            writer.write_table(table)
            written += len(frame)
            if progress:
                pct = 100.0 * written / spec.n_interactions
                print(f"\r[hybridrec data synth] {written:,} interactions ({pct:.0f}%)",
                      end="", file=sys.stderr, flush=True)
    finally:
        if writer is not None:
            writer.close()
    tmp.replace(folder / "interactions.parquet")
    (folder / "schema.yaml").write_text(SCHEMA_YAML.format(name=spec.name), encoding="utf-8")
    info = {"generator": "hybridrec data synth", "seed": seed, "rows_per_chunk": rows_per_chunk,
            **dataclasses.asdict(spec), "n_interactions_written": written,
            "seconds": round(time.perf_counter() - t0, 1)}
    (folder / "synth.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    if progress:
        print(f"\n[hybridrec data synth] {spec.name}: {written:,} interactions, "
              f"{spec.n_users:,} users, {spec.n_items:,} items -> {folder} "
              f"({info['seconds']} s)", file=sys.stderr, flush=True)
    return folder
