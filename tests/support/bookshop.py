"""A seeded, generated bookshop in hybridrec's dataset format: the non-movie test catalogue.

Every table uses a different file format and the schema renames columns, so one dataset
exercises CSV, Parquet, JSON Lines, ``schema.yaml`` column mapping and every attribute type:

* ``items.csv``: ``sku`` ("sku-000123"), ``title``, ``categories`` (a ``|`` list),
  ``authors`` (a ``|`` list), ``price``, ``pages``, ``year`` (numeric), ``available``
  (true/false), ``description`` (text);
* ``users.jsonl``: ``customer`` ("cust-0042"), ``country`` (categorical), ``age`` (numeric);
* ``interactions.parquet``: ``customer``, ``sku``, ``ts`` (ISO 8601 text), ``action``
  (view, add_to_cart, purchase, and the negative hide and dislike): implicit feedback
  only, no ratings.

Negative feedback (:func:`negative_events`): every :data:`HIDING_EVERY`-th customer hides
and dislikes a few books of their favourite categories they never looked at (the books a
model would most likely offer them), and the last customer has only hides and dislikes (a
known customer without a single positive interaction).

Customers like two or three categories; most views fall in them, and purchases follow views
of the same book, so a model has something to learn.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

HIDING_EVERY = 6
"""Customers 1, 7, 13, ... (0-based positions 0, 6, 12, ...) hide and dislike books."""
CATEGORIES = ("fantasy", "science-fiction", "crime", "romance", "history", "cooking",
              "travel", "poetry", "children", "business", "philosophy", "art")
COUNTRIES = ("FR", "DE", "ES", "IT", "GB", "PT", "NL")
WORDS = ("river", "shadow", "garden", "empire", "kitchen", "voyage", "secret", "winter",
         "letters", "island", "machine", "crown", "harbour", "silence", "orchard", "atlas")

SCHEMA = """\
# the bookshop: hybridrec dataset schema (docs/own-data.md)
name: bookshop
interactions:
  file: interactions.parquet
  columns: {user_id: customer, item_id: sku, timestamp: ts, event: action}
items:
  file: items.csv
  columns: {item_id: sku}
  attributes:
    categories: {type: categorical, list: true}
    authors: {type: categorical, list: true}
    price: numeric
    pages: numeric
    year: numeric
    description: text
users:
  file: users.jsonl
  columns: {user_id: customer}
  attributes:
    country: categorical
    age: numeric
"""


def bookshop_tables(seed: int = 7, n_items: int = 240, n_users: int = 120,
                    views_per_user: int = 30) -> dict[str, pd.DataFrame]:
    """The three tables (string ids, ISO timestamps), deterministic for a seed."""
    rng = np.random.default_rng(seed)
    n_cat = len(CATEGORIES)
    main_cat = rng.integers(0, n_cat, n_items)
    second = (main_cat + rng.integers(1, n_cat, n_items)) % n_cat
    has_second = rng.random(n_items) < 0.4
    authors = [f"author-{i:03d}" for i in range(60)]
    items = pd.DataFrame({
        "sku": [f"sku-{i:06d}" for i in range(1, n_items + 1)],
        "title": [f"The {WORDS[a].title()} of {WORDS[b].title()}"
                  for a, b in rng.integers(0, len(WORDS), (n_items, 2))],
        "categories": ["|".join([CATEGORIES[m], *([CATEGORIES[s]] if h else [])])
                       for m, s, h in zip(main_cat, second, has_second, strict=True)],
        "authors": ["|".join(sorted(set(rng.choice(authors, rng.integers(1, 3)).tolist())))
                    for _ in range(n_items)],
        "price": np.round(rng.uniform(4, 45, n_items), 2),
        "pages": rng.integers(80, 900, n_items),
        "year": rng.integers(1950, 2026, n_items),
        "available": np.where(rng.random(n_items) < 0.9, "true", "false"),
        "description": [f"A {CATEGORIES[m]} book about a {WORDS[w]}."
                        for m, w in zip(main_cat, rng.integers(0, len(WORDS), n_items),
                                        strict=True)],
    })
    users = pd.DataFrame({
        "customer": [f"cust-{u:04d}" for u in range(1, n_users + 1)],
        "country": rng.choice(COUNTRIES, n_users),
        "age": rng.integers(18, 80, n_users),
    })
    by_cat = [np.flatnonzero(main_cat == c) for c in range(n_cat)]
    rows = []
    start = pd.Timestamp("2025-01-01T00:00:00Z")
    for u in range(n_users):
        liked = rng.choice(n_cat, rng.integers(2, 4), replace=False)
        n = int(rng.integers(views_per_user // 2, views_per_user * 3 // 2))
        in_taste = rng.random(n) < 0.85
        picks = np.where(in_taste,
                         [rng.choice(by_cat[rng.choice(liked)]) for _ in range(n)],
                         rng.integers(0, n_items, n))
        times = np.sort(rng.integers(0, 180 * 86400, n))
        for i, t in zip(picks, times, strict=True):
            rows.append((u, i, t, "view"))
            r = rng.random()
            if r < 0.25:
                rows.append((u, i, t + 60, "add_to_cart"))
            if r < 0.15:
                rows.append((u, i, t + 120, "purchase"))
    inter = pd.DataFrame(rows, columns=["u", "i", "t", "action"])
    inter = pd.concat([inter[inter["u"] != n_users - 1],
                       negative_events(inter, main_cat, n_users, seed)], ignore_index=True)
    interactions = pd.DataFrame({
        "customer": users["customer"].to_numpy()[inter["u"]],
        "sku": items["sku"].to_numpy()[inter["i"]],
        "ts": (start + pd.to_timedelta(inter["t"], unit="s")).dt.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "action": inter["action"],
    })
    return {"items": items, "users": users, "interactions": interactions}


def negative_events(inter: pd.DataFrame, main_cat: np.ndarray, n_users: int,
                    seed: int) -> pd.DataFrame:
    """Hide and dislike rows (``u``, ``i``, ``t``, ``action``), deterministic for a seed.

    Every :data:`HIDING_EVERY`-th customer hides two and dislikes one of the most viewed books
    of their most viewed category that they never viewed, after their last event; the last
    customer only hides three books and dislikes two (they have no other event).
    """
    rng = np.random.default_rng(seed + 1)
    views = inter[inter["action"] == "view"]
    popularity = np.bincount(views["i"], minlength=len(main_cat))
    rows = []
    for u in range(0, n_users - 1, HIDING_EVERY):
        own = views[views["u"] == u]
        favourite = np.bincount(main_cat[own["i"]], minlength=main_cat.max() + 1).argmax()
        unseen = np.setdiff1d(np.flatnonzero(main_cat == favourite), own["i"])
        picks = unseen[np.argsort(-popularity[unseen], kind="stable")][:3]
        end = int(own["t"].max())
        rows += [(u, int(i), end + 600 * (k + 1), "dislike" if k == 2 else "hide")
                 for k, i in enumerate(picks)]
    last = rng.choice(len(main_cat), 5, replace=False)
    rows += [(n_users - 1, int(i), 86400 * (k + 1), "dislike" if k >= 3 else "hide")
             for k, i in enumerate(last)]
    return pd.DataFrame(rows, columns=["u", "i", "t", "action"])


def write_bookshop(folder: Path, seed: int = 7, **sizes: int) -> Path:
    """Write the bookshop (items.csv, users.jsonl, interactions.parquet, schema.yaml)."""
    folder.mkdir(parents=True, exist_ok=True)
    tables = bookshop_tables(seed, **sizes)
    tables["items"].to_csv(folder / "items.csv", index=False)
    tables["users"].to_json(folder / "users.jsonl", orient="records", lines=True)
    tables["interactions"].to_parquet(folder / "interactions.parquet", index=False)
    (folder / "schema.yaml").write_text(SCHEMA, encoding="utf-8")
    return folder
