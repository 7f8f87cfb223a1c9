"""Read a folder in the project's own format into a :class:`Dataset`, and write one.

:func:`load_generic` validates the folder (:mod:`training.data.validate`; any error raises a
:class:`DataError` listing them with file, rows and column), then builds the canonical
:class:`Dataset` the pipeline uses, through the single id-mapping step of
:mod:`training.data.ids`. What today's models see of the format:

* interactions: one row per (user, item) with a positive event, its ``weight`` the sum of its
  events' weights and its ``rating`` the latest rating, else ``implicit_rating`` (the
  ``--implicit-rating`` of ``hybridrec train``, 4.0 by default); pairs with a negative event
  (``dislike``, ``hide``) go to ``Dataset.negatives`` instead
  (:mod:`training.data.event_weights`). Users with only negative events are users too.
* items: ``title``; ``year`` from a numeric attribute named ``year``; ``genres`` from the
  categorical attribute named ``genres``, else the first categorical attribute; ``overview``
  from the text attributes joined by a blank line; ``imdb_id``/``tmdb_id`` external ids
  become ``links``. Every attribute and the ``available`` flag are kept in
  ``Dataset.item_attributes`` for the features and filters to come.
* users: ``gender``, ``age``, ``occupation`` attributes become the user features the
  models know; all attributes are kept in ``Dataset.user_attributes``.

:func:`write_generic` writes any :class:`Dataset` (a MovieLens release, for instance) in the
format, so ``hybridrec data convert`` turns the MovieLens readers into adapters.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from shared.contracts.errors import DataError
from training.data.dataset import ITEM_COLUMNS, TAG_COLUMNS, Dataset
from training.data.event_weights import EventWeights, combine_events, resolve_weights
from training.data.ids import IdMap, build_id_map
from training.data.schema import Attribute, Schema, TableSchema, dump_schema
from training.data.tables import write_table
from training.data.validate import CanonicalTables, Report, validate_folder

log = logging.getLogger(__name__)

DEFAULT_IMPLICIT_RATING = 4.0
"""The rating a positive event without a rating value stands for (``--implicit-rating``)."""
MAX_LISTED = 20


def raise_on_errors(report: Report) -> CanonicalTables:
    """The tables of a valid report; a DataError listing every error otherwise."""
    if report.tables is not None and report.ok:
        return report.tables
    errors = report.errors
    first = errors[0]
    lines = [p.render(5) for p in errors[:MAX_LISTED]]
    more = f"\n... and {len(errors) - MAX_LISTED} more" if len(errors) > MAX_LISTED else ""
    raise DataError(
        f"{len(errors)} problem(s) in the dataset (run `hybridrec data validate` for all of "
        "them):\n" + "\n".join(lines) + more,
        path=None, file=first.file, column=first.column,
        rows=[int(r) for r in first.rows[:MAX_LISTED]])


def _pick(attrs: list[Attribute], name: str, *types: str) -> Attribute | None:
    named = [a for a in attrs if a.name == name and a.type in types]
    return named[0] if named else None


def _items(t: CanonicalTables, items_map: IdMap) -> tuple[pd.DataFrame, pd.DataFrame | None,
                                                         pd.DataFrame]:
    attrs = t.attributes.get("items", [])
    src = t.items.assign(item_id=items_map.to_int(t.items["item_id"]))
    src = src.sort_values("item_id", kind="stable").reset_index(drop=True)
    year = _pick(attrs, "year", "numeric")
    genres = _pick(attrs, "genres", "categorical") or next(
        (a for a in attrs if a.type == "categorical"), None)
    if genres is None:
        genre_lists: list[list[str]] = [[] for _ in range(len(src))]
    elif genres.list:
        genre_lists = [list(g) for g in src[genres.name]]
    else:
        genre_lists = [[g] if g else [] for g in src[genres.name]]
    texts = [a.name for a in attrs if a.type == "text"]
    overview: pd.Series = pd.Series([None] * len(src), dtype=object)
    if texts:
        joined = src[texts].astype(str).apply(lambda c: c.str.strip()).agg("\n\n".join, axis=1)
        joined = joined.str.strip()
        overview = joined.where(joined != "", None).astype(object)
    items = pd.DataFrame({
        "item_id": src["item_id"].to_numpy(np.int64),
        "title": src["title"].astype(str).to_numpy(),
        "year": (pd.Series(np.round(src[year.name].to_numpy(np.float64))).astype("Int64").array
                 if year else pd.array([pd.NA] * len(src), dtype="Int64")),
        "genres": pd.Series(genre_lists, dtype=object).to_numpy(),
        "tags": pd.Series([[] for _ in range(len(src))], dtype=object).to_numpy(),
        "overview": overview.to_numpy(),
    })[list(ITEM_COLUMNS)]
    links = None
    ext = {a.name for a in attrs if a.type == "external_id"}
    if {"imdb_id", "tmdb_id"} & ext:
        links = pd.DataFrame({"item_id": items["item_id"]})
        for c in ("imdb_id", "tmdb_id"):
            vals = src[c] if c in ext else pd.Series([""] * len(src))
            links[c] = pd.to_numeric(pd.Series(vals).replace("", None),
                                     errors="coerce").astype("Int64").array
    return items, links, src


def _users(t: CanonicalTables, users_map: IdMap, seen: np.ndarray) -> tuple[pd.DataFrame,
                                                                           pd.DataFrame | None]:
    users = pd.DataFrame({"user_id": np.sort(seen).astype(np.int64)})
    if t.users is None:
        return users, None
    src = t.users.assign(user_id=users_map.to_int(t.users["user_id"]))
    src = src.sort_values("user_id", kind="stable").reset_index(drop=True)
    known = src[src["user_id"].isin(seen)].reset_index(drop=True)
    attrs = {a.name: a for a in t.attributes.get("users", [])}
    if {"gender", "age", "occupation"} <= set(attrs) and len(known) == len(users):
        users = pd.DataFrame({
            "user_id": known["user_id"].to_numpy(np.int64),
            "gender": known["gender"].astype(str).to_numpy(),
            "age": pd.Series(np.round(known["age"].to_numpy(np.float64))).astype("Int64").array,
            "occupation": known["occupation"].astype(str).to_numpy()})
    return users, src


def to_dataset(t: CanonicalTables, *, implicit_rating: float = DEFAULT_IMPLICIT_RATING,
               min_rating: float | None = None, source_path: str = "",
               event_weights: EventWeights | None = None) -> Dataset:
    """The id-mapping step: canonical string-id tables -> the int64 :class:`Dataset`."""
    inter = t.interactions
    tag_users = [] if t.tags is None else [t.tags["user_id"]]
    user_tables = [] if t.users is None else [t.users["user_id"]]
    users_map = build_id_map(inter["user_id"], *user_tables, *tag_users)
    items_map = build_id_map(t.items["item_id"])
    weights = resolve_weights(t.schema.events, event_weights)
    ratings, negatives, counts = combine_events(
        users_map.to_int(inter["user_id"]), items_map.to_int(inter["item_id"]),
        inter["timestamp"].to_numpy(np.int64), inter["event"].to_numpy(dtype=object),
        inter["value"].to_numpy(np.float64), weights=weights, implicit_rating=implicit_rating)
    if ratings.empty:
        raise DataError("has no positive interactions (every event is a dislike or hide, or "
                        "weighs 0)", path=str(t.files.get("interactions", "")))
    info: dict[str, object] = {
        "format": "hybridrec", **counts, "implicit_rating": implicit_rating,
        "event_weights": dict(weights),
        "id_maps": {"users": users_map.kind, "items": items_map.kind}}
    if min_rating is not None:
        kept = ratings["rating"] >= min_rating
        info.update(min_rating=float(min_rating), ratings_below_min_dropped=int((~kept).sum()))
        ratings = ratings[kept].reset_index(drop=True)
        if ratings.empty:
            raise DataError(f"no ratings are >= min_rating={min_rating}; lower min_rating",
                            path=str(t.files.get("interactions", "")))
    items, links, item_attrs = _items(t, items_map)
    users, user_attrs = _users(t, users_map, np.union1d(ratings["user_id"].unique(),
                                                        negatives["user_id"].unique()))
    tags = None
    if t.tags is not None:
        tags = pd.DataFrame({"user_id": users_map.to_int(t.tags["user_id"]),
                             "item_id": items_map.to_int(t.tags["item_id"]),
                             "tag": t.tags["tag"].astype(str).str.strip().str.lower(),
                             "timestamp": t.tags["timestamp"].to_numpy(np.int64)})
        tags = tags[list(TAG_COLUMNS)]
    return Dataset(name=t.name, interactions=ratings, items=items, users=users, links=links,
                   tags=tags, negatives=negatives if len(negatives) else None,
                   source_sha256=_sha256(list(t.files.values())),
                   source_path=source_path, info=info,
                   id_maps={"users": users_map, "items": items_map},
                   item_attributes=item_attrs, user_attributes=user_attrs,
                   item_attribute_schema=list(t.attributes.get("items", [])))


def _sha256(paths: list[Path]) -> str:
    digest = hashlib.sha256()
    for p in sorted(paths):
        with open(p, "rb") as fh:
            while chunk := fh.read(1 << 20):
                digest.update(chunk)
    return digest.hexdigest()


def load_generic(path: str | Path, *, schema_path: str | Path | None = None,
                 implicit_rating: float = DEFAULT_IMPLICIT_RATING,
                 min_rating: float | None = None,
                 event_weights: EventWeights | None = None) -> Dataset:
    """Validate the folder ``path`` and return its canonical :class:`Dataset`
    (``event_weights`` override the schema's ``events:``)."""
    tables = raise_on_errors(validate_folder(path, schema_path))
    ds = to_dataset(tables, implicit_rating=implicit_rating, min_rating=min_rating,
                    source_path=str(path), event_weights=event_weights)
    log.info("loaded %s from %s: %d interactions, %d users, %d items", ds.name, path,
             len(ds.interactions), len(ds.users), len(ds.items))
    return ds


def write_generic(ds: Dataset, out: str | Path, fmt: str = "csv") -> Path:
    """Write ``ds`` in the format (tables + ``schema.yaml``) into the new folder ``out``."""
    import yaml

    folder = Path(out)
    if folder.exists() and any(folder.iterdir()):
        raise DataError("exists and is not empty; pass a new folder", path=str(folder))
    folder.mkdir(parents=True, exist_ok=True)
    inter = ds.interactions
    write_table(pd.DataFrame({
        "user_id": inter["user_id"].astype(str), "item_id": inter["item_id"].astype(str),
        "timestamp": inter["timestamp"], "event": "rating", "value": inter["rating"]}),
        folder, "interactions", fmt, [])
    items = pd.DataFrame({"item_id": ds.items["item_id"].astype(str),
                          "title": ds.items["title"], "year": ds.items["year"],
                          "genres": ds.items["genres"]})
    item_attrs = {"year": Attribute("year", "numeric"),
                  "genres": Attribute("genres", "categorical", list=True)}
    if ds.items["overview"].notna().any():
        items["overview"] = ds.items["overview"].fillna("")
        item_attrs["overview"] = Attribute("overview", "text")
    if ds.links is not None:
        links = ds.links.set_index("item_id")
        for c in ("imdb_id", "tmdb_id"):
            items[c] = ds.items["item_id"].map(links[c]).astype("Int64").astype(str).replace(
                "<NA>", "")
            item_attrs[c] = Attribute(c, "external_id")
    schema = Schema(name=ds.name, tables={
        "interactions": TableSchema("interactions"),
        "items": TableSchema("items", attributes=item_attrs)})
    write_table(items, folder, "items", fmt, ["genres"])
    if ds.user_feature_columns:
        users = ds.users.assign(user_id=ds.users["user_id"].astype(str))
        write_table(users, folder, "users", fmt, [])
        schema.tables["users"] = TableSchema("users", attributes={
            c: Attribute(c, "numeric" if c == "age" else "categorical")
            for c in ds.user_feature_columns})
    if ds.tags is not None and not ds.tags.empty:
        write_table(ds.tags.assign(user_id=ds.tags["user_id"].astype(str),
                                   item_id=ds.tags["item_id"].astype(str)),
                    folder, "tags", fmt, [])
        schema.tables["tags"] = TableSchema("tags")
    for name, table in schema.tables.items():
        ext = {"csv": ".csv", "parquet": ".parquet", "jsonl": ".jsonl"}[fmt]
        table.file = f"{name}{ext}"
    (folder / "schema.yaml").write_text(
        "# hybridrec dataset schema (docs/own-data.md)\n"
        + yaml.safe_dump(json.loads(json.dumps(dump_schema(schema))), sort_keys=False),
        encoding="utf-8")
    return folder
