"""Generated catalogue items that look like the real ones (for scale benchmarks).

Every synthetic item is a variant of a real *parent* item of the base bundle:
its BERT content vector is the parent's plus Gaussian noise, renormalised (a
mixture of Gaussians on the unit sphere centred on the real items' vectors), its
genres and year are the parent's with small changes, its title is generated.
Parents are drawn with Zipf weights over a random order of the real items, so
cluster sizes follow a power law (a few huge clusters, a long tail of small
ones), as in a real catalogue. Popularity is Zipf-distributed, mostly zero.

Numpy only; everything streams in chunks so 1M x 384 vectors never need more
than one chunk of scratch memory besides the output array (a memmap).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import numpy as np
import pandas as pd

#: Noise per dimension of a content vector (384-d): cos(item, parent) ~ 1/sqrt(1 + 384 s^2)
#: ~ 0.85, about the similarity of a real film to its closest BERT neighbours.
CONTENT_NOISE = 0.032
#: Zipf exponent of the cluster sizes (share of synthetic items per parent ~ rank^-s).
CLUSTER_ZIPF = 0.8
CHUNK = 65_536

_ADJECTIVES = (
    "Silent", "Crimson", "Hidden", "Broken", "Golden", "Last", "Lost", "Midnight", "Northern",
    "Electric", "Wild", "Quiet", "Burning", "Frozen", "Secret", "Distant", "Little", "Eternal",
    "Savage", "Velvet", "Iron", "Hollow", "Bright", "Dark", "Endless", "Fallen", "Forgotten",
    "Glass", "Lonely", "Major", "Paper", "Restless", "Scarlet", "Shadow", "Stolen", "Sudden",
    "Twisted", "Wandering", "Winter", "Young", "Atomic", "Bitter", "Blue", "Copper", "Desert",
    "Fearless",
)
_NOUNS = (
    "Harbor", "River", "Empire", "Garden", "Horizon", "Protocol", "Symphony", "Witness",
    "Frontier", "Station", "Kingdom", "Mirror", "Island", "Legacy", "Signal", "Voyage",
    "Machine", "Orchard", "Circus", "Detective", "Highway", "Planet", "Reunion", "Tide",
    "Vendetta", "Whisper", "Citadel", "Dynasty", "Experiment", "Fortune", "Heist", "Lighthouse",
    "Masquerade", "Outpost", "Pilgrim", "Rebellion", "Sanctuary", "Tempest", "Uprising",
    "Valley", "Wanderer", "Academy", "Ballad", "Canyon", "Dragon", "Echo", "Falcon", "Ghost",
    "Hunter", "Journey", "Labyrinth", "Mission",
)
_SUFFIXES = ("", "", "", "", " II", " III", " Returns", " Rising", " of the Night",
             " in Paris", " Reborn", ": The Beginning")
_YEAR_IN_TITLE = re.compile(r"\(\d{4}\)\s*$")


def chunks(n: int, size: int = CHUNK) -> Iterator[tuple[int, int]]:
    """``(start, stop)`` pairs covering ``range(n)`` in blocks of ``size``."""
    for start in range(0, n, size):
        yield start, min(start + size, n)


def assign_parents(n_synthetic: int, n_real: int, rng: np.random.Generator,
                   zipf: float = CLUSTER_ZIPF) -> np.ndarray:
    """[n_synthetic] int64 parent (real item position) of every synthetic item.

    Cluster sizes follow ``rank^-zipf`` over a random order of the real items.
    """
    order = rng.permutation(n_real)
    weights = 1.0 / np.arange(1, n_real + 1, dtype=np.float64) ** zipf
    weights /= weights.sum()
    return order[rng.choice(n_real, size=n_synthetic, p=weights)].astype(np.int64)


def write_content_vectors(
    parent_vectors: np.ndarray, parents: np.ndarray, out: np.ndarray, offset: int,
    rng: np.random.Generator, noise: float = CONTENT_NOISE,
) -> None:
    """Fill ``out[offset:offset + len(parents)]`` with noisy, L2-normalised parent vectors.

    Args:
        parent_vectors: [n_real, D] float32 L2-normalised real content vectors.
        parents: [m] parent positions.
        out: [offset + m, D] float32 destination (a memmap is fine).
        offset: First row to write.
        rng: Random generator.
        noise: Standard deviation per dimension; each cluster scales it by U(0.7, 1.3).
    """
    scale = rng.uniform(0.7, 1.3, size=len(parent_vectors)).astype(np.float32) * noise
    dim = parent_vectors.shape[1]
    for lo, hi in chunks(len(parents)):
        p = parents[lo:hi]
        block = rng.standard_normal((hi - lo, dim), dtype=np.float32)
        block *= scale[p][:, None]
        block += parent_vectors[p]
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        out[offset + lo: offset + hi] = block


def _titles(n: int, rng: np.random.Generator, years: np.ndarray, with_year: bool) -> list[str]:
    adj = np.asarray(_ADJECTIVES)[rng.integers(len(_ADJECTIVES), size=n)]
    noun = np.asarray(_NOUNS)[rng.integers(len(_NOUNS), size=n)]
    suffix = np.asarray(_SUFFIXES)[rng.integers(len(_SUFFIXES), size=n)]
    the = np.where(rng.random(n) < 0.4, "The ", "")
    titles = np.char.add(np.char.add(np.char.add(the, adj), " "), noun)
    titles = np.char.add(titles, suffix)
    out = titles.tolist()
    if with_year:
        out = [t if y <= 0 else f"{t} ({y})" for t, y in zip(out, years.tolist(), strict=True)]
    return out


def _genres(base_genres: list[list[str]], parents: np.ndarray, vocab: list[str],
            rng: np.random.Generator) -> list[list[str]]:
    """The parent's genres; 20% of items also get one random genre, 10% lose their first."""
    extra = rng.random(len(parents)) < 0.2
    drop = rng.random(len(parents)) < 0.1
    picks = rng.integers(len(vocab), size=len(parents)) if vocab else np.zeros(len(parents), int)
    out = []
    for j, p in enumerate(parents.tolist()):
        g = list(base_genres[p])
        if drop[j] and len(g) > 1:
            g = g[1:]
        if extra[j] and vocab and vocab[picks[j]] not in g:
            g.append(vocab[picks[j]])
        out.append(g)
    return out


def synthetic_items(
    base_items: pd.DataFrame, parents: np.ndarray, first_id: int, rng: np.random.Generator,
    max_popularity: int,
) -> pd.DataFrame:
    """The items table rows of the synthetic items (columns of ``items.parquet``).

    Args:
        base_items: The base bundle's items table (item_id, title, year, genres, tags,
            overview, popularity).
        parents: [m] parent positions in ``base_items``.
        first_id: The number of the first synthetic item; ids are the decimal text of
            consecutive numbers (ids are strings: :mod:`shared.contracts.ids`).
        rng: Random generator.
        max_popularity: Cap of the generated interaction counts.
    """
    m = len(parents)
    base_genres = [[str(g) for g in gl] if gl is not None else [] for gl in base_items["genres"]]
    vocab = sorted({g for gl in base_genres for g in gl if g != "(no genres listed)"})
    py = pd.to_numeric(base_items["year"], errors="coerce").to_numpy(np.float64)[parents]
    years = np.where(np.isnan(py), 0, py + np.round(rng.normal(0, 4, m))).astype(np.int64)
    years = np.where(years > 0, np.clip(years, 1890, 2025), 0)
    with_year = bool(base_items["title"].astype(str).str.contains(_YEAR_IN_TITLE).mean() > 0.5)
    popularity = np.minimum(rng.zipf(2.0, m) - 1, max_popularity).astype(np.int64)
    return pd.DataFrame({
        "item_id": np.arange(first_id, first_id + m, dtype=np.int64).astype(str).astype(object),
        "title": _titles(m, rng, years, with_year),
        "year": pd.array([int(y) if y > 0 else None for y in years.tolist()], dtype="Int64"),
        "genres": _genres(base_genres, parents, vocab, rng),
        "tags": [[] for _ in range(m)],
        "overview": [None] * m,
        "popularity": popularity,
    })


def extend_neighbors(
    neighbors: np.ndarray, weights: np.ndarray, parents: np.ndarray, n_real: int,
    out_neighbors: np.ndarray, out_weights: np.ndarray, rng: np.random.Generator,
) -> None:
    """A neighbour table over the whole catalogue (real rows kept, synthetic rows added).

    A synthetic item recommends its parent, then random members of its parent's
    cluster, with the base table's average weight at each rank (a plausible
    profile); padding is -1 / 0 as in the real tables.

    Args:
        neighbors: [n_real, K] int32 base table.
        weights: [n_real, K] float32 base weights.
        parents: [m] parent of each synthetic item (positions < n_real).
        n_real: Real items (synthetic item j has position ``n_real + j``).
        out_neighbors: [n_real + m, K] int32 destination.
        out_weights: [n_real + m, K] float32 destination.
        rng: Random generator.
    """
    k = neighbors.shape[1]
    out_neighbors[:n_real] = neighbors
    out_weights[:n_real] = weights
    valid = neighbors >= 0
    profile = np.where(valid, weights, 0).sum(axis=0) / np.maximum(valid.sum(axis=0), 1)
    profile = np.maximum(profile.astype(np.float32), 1e-4)
    order = np.argsort(parents, kind="stable")  # synthetic items grouped by cluster
    sizes = np.bincount(parents, minlength=n_real)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    for lo, hi in chunks(len(parents)):
        p = parents[lo:hi]
        draw = rng.random((hi - lo, k - 1))
        member = order[starts[p][:, None] + (draw * sizes[p][:, None]).astype(np.int64)]
        nb = np.concatenate([p[:, None], member + n_real], axis=1)
        own = np.arange(lo, hi)[:, None] + n_real
        nb = np.where(nb == own, -1, nb).astype(np.int32)
        out_neighbors[n_real + lo: n_real + hi] = nb
        out_weights[n_real + lo: n_real + hi] = np.where(nb >= 0, profile[None, :], 0.0)
