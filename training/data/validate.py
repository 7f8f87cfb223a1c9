"""Check a dataset folder in the project's format and type it into canonical tables.

:func:`validate_folder` reads every table (:mod:`training.data.tables`), types every column
(:mod:`training.data.columns`, vectorised) and reports every problem with its file, the
1-based data rows and the column, as :class:`Problem` groups: one group per kind of problem
and column, holding every row that has it. Errors make the data unusable; warnings do not.
On success it returns :class:`CanonicalTables`, whose ids are strings (the canonical form the
rest of the project moves to; :mod:`training.data.ids` maps them to the integers today's
training code needs).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from shared.contracts.errors import DataError
from training.data import columns as col
from training.data.schema import (
    KNOWN_EVENTS,
    REQUIRED_ROLES,
    ROLE_ALIASES,
    ROLES,
    Attribute,
    Schema,
    default_attribute,
    load_schema,
)
from training.data.tables import RawTable, read_table

Severity = Literal["error", "warning"]
_Typed = tuple[pd.DataFrame, list[Attribute]]


@dataclass
class Problem:
    """One kind of problem in one column of one file, with every row that has it."""

    severity: Severity
    file: str
    column: str | None
    message: str
    rows: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    @property
    def count(self) -> int:
        """Rows with the problem (1 for a file-level problem)."""
        return max(1, len(self.rows))

    def render(self, max_rows: int = 20) -> str:
        """``file, rows 3, 7 (2 rows), column 'x': message``."""
        where = self.file
        if len(self.rows):
            shown = ", ".join(str(int(r)) for r in self.rows[:max_rows])
            more = f", ... ({len(self.rows)} rows)" if len(self.rows) > max_rows else ""
            where += f", row{'s' if len(self.rows) > 1 else ''} {shown}{more}"
        if self.column:
            where += f", column {self.column!r}"
        return f"{self.severity}: {where}: {self.message}"

    def to_dict(self, max_rows: int = 1000) -> dict[str, Any]:
        """JSON-ready form (at most ``max_rows`` row numbers, ``count`` says how many)."""
        return {"severity": self.severity, "file": self.file, "column": self.column,
                "message": self.message, "count": self.count,
                "rows": [int(r) for r in self.rows[:max_rows]]}


@dataclass
class CanonicalTables:
    """The typed tables of a valid dataset; ids are strings.

    * ``interactions``: ``user_id``, ``item_id`` (str), ``timestamp`` (int64 seconds),
      ``event`` (str), ``value`` (float64, NaN when absent), in file order; id and
      event columns are pyarrow-backed text (``string[pyarrow]``);
    * ``items``: ``item_id``, ``title`` (str), ``available`` (bool), then one column per
      attribute (categorical: str or list[str]; numeric: float64; text, external_id: str);
    * ``users``: ``user_id`` then attributes (a row per user of the users file), or None;
    * ``tags``: ``user_id``, ``item_id``, ``tag``, ``timestamp``, or None.
    """

    name: str
    interactions: pd.DataFrame
    items: pd.DataFrame
    users: pd.DataFrame | None
    tags: pd.DataFrame | None
    attributes: dict[str, list[Attribute]]
    files: dict[str, Path]
    schema: Schema


@dataclass
class Report:
    """What :func:`validate_folder` found."""

    problems: list[Problem]
    summary: dict[str, Any]
    tables: CanonicalTables | None

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def ok(self) -> bool:
        return not self.errors


class _Checker:
    """Collects problems for one table."""

    def __init__(self, problems: list[Problem], raw: RawTable) -> None:
        self.problems = problems
        self.raw = raw
        self.rows = raw.row_numbers()

    def add(self, mask: np.ndarray | None, column: str | None, message: str,
            severity: Severity = "error") -> None:
        if mask is None:
            self.problems.append(Problem(severity, str(self.raw.path), column, message))
        elif mask.any():
            self.problems.append(Problem(severity, str(self.raw.path), column, message,
                                         self.rows[np.asarray(mask, dtype=bool)]))

    def ids(self, frame: pd.DataFrame, column: str, what: str) -> pd.Series:
        text, empty, bad = col.parse_ids(frame[column])
        self.add(empty, column, f"{what} is empty")
        self.add(bad, column, f"{what} is not 1..128 characters of A-Z a-z 0-9 . _ : @ - "
                              "(or is only dots); rename it")
        return text


def _resolve_columns(raw: RawTable, schema: Schema, chk: _Checker) -> dict[str, str] | None:
    """Role -> header column; None (with an error) when a required role is missing."""
    declared = schema.table(raw.name).columns
    header = list(raw.frame.columns)
    out: dict[str, str] = {}
    for role in ROLES[raw.name]:
        if role in declared:
            if declared[role] in header:
                out[role] = declared[role]
            else:
                chk.add(None, declared[role], f"the schema maps {role} to column "
                        f"{declared[role]!r}, which the file lacks (it has {header})")
                return None
            continue
        hit = next((c for c in ROLE_ALIASES.get(raw.name, {}).get(role, (role,)) if c in header),
                   None)
        if hit is not None:
            out[role] = hit
        elif role in REQUIRED_ROLES[raw.name]:
            chk.add(None, role, f"missing required column {role!r} (the header has {header}); "
                                "rename the column or map it in schema.yaml under columns:")
            return None
    return out


def _attributes(raw: RawTable, schema: Schema, used: set[str], chk: _Checker) -> list[Attribute]:
    declared = schema.table(raw.name).attributes
    for name in declared:
        if name not in raw.frame.columns:
            chk.add(None, name, f"the schema declares attribute {name!r}, which the file lacks")
    out = []
    for name in raw.frame.columns:
        if name in used:
            continue
        if name in declared:
            out.append(declared[name])
            continue
        s = raw.frame[name]
        _, missing, bad = col.parse_numbers(s)
        numeric = not bad.any() and not missing.all()
        if s.dtype == object:
            has_lists = bool(s.map(lambda v: isinstance(v, list | np.ndarray)).any())
        else:
            sep = schema.table(raw.name).separator
            has_lists = bool(col.as_text(s).str.contains(sep, regex=False).any())
        out.append(default_attribute(raw.name, str(name), numeric=numeric, has_lists=has_lists))
    return out


def _typed_attributes(raw: RawTable, attrs: list[Attribute], sep: str,
                      chk: _Checker) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for a in attrs:
        s = raw.frame[a.name]
        if a.type == "numeric":
            vals, _, bad = col.parse_numbers(s)
            chk.add(bad, a.name, "is not a number (numeric attribute); leave the cell empty "
                                 "when unknown")
            out[a.name] = vals
        elif a.type == "categorical" and a.list:
            out[a.name] = col.parse_lists(s, sep).to_numpy()
        elif a.type == "categorical":
            out[a.name] = col.as_text(s).str.strip().to_numpy(dtype=object)
        else:
            out[a.name] = col.as_text(s).to_numpy(dtype=object)
    return out


def _check_items(raw: RawTable, schema: Schema, chk: _Checker) -> _Typed | None:
    cols = _resolve_columns(raw, schema, chk)
    if cols is None:
        return None
    f = raw.frame
    ids = chk.ids(f, cols["item_id"], "item id")
    chk.add(col.duplicated_rows(col.codes(ids)) & (ids != "").to_numpy(bool), cols["item_id"],
            "item id appears in an earlier row too (duplicate item)")
    title = col.as_text(f[cols["title"]]).str.strip()
    chk.add((title == "").to_numpy(dtype=bool), cols["title"], "title is empty")
    if "available" in cols:
        available, bad = col.parse_flags(f[cols["available"]])
        chk.add(bad, cols["available"], "is not a yes/no value (true/false, 1/0, yes/no)")
    else:
        available = np.ones(len(f), dtype=bool)
    attrs = _attributes(raw, schema, set(cols.values()), chk)
    typed = _typed_attributes(raw, attrs, schema.table("items").separator, chk)
    items = pd.DataFrame({"item_id": ids.reset_index(drop=True),
                          "title": title.to_numpy(dtype=object), "available": available,
                          **typed})
    return items, attrs


def _check_users(raw: RawTable, schema: Schema, chk: _Checker) -> _Typed | None:
    cols = _resolve_columns(raw, schema, chk)
    if cols is None:
        return None
    ids = chk.ids(raw.frame, cols["user_id"], "user id")
    chk.add(col.duplicated_rows(col.codes(ids)) & (ids != "").to_numpy(bool), cols["user_id"],
            "user id appears in an earlier row too (duplicate user)")
    attrs = _attributes(raw, schema, set(cols.values()), chk)
    typed = _typed_attributes(raw, attrs, schema.table("users").separator, chk)
    return pd.DataFrame({"user_id": ids.reset_index(drop=True), **typed}), attrs


def _check_events(raw: RawTable, schema: Schema, chk: _Checker, item_ids: pd.Series | None,
                  user_ids: pd.Series | None) -> pd.DataFrame | None:
    """Interactions (or, with ``raw.name == "tags"``, tag events)."""
    cols = _resolve_columns(raw, schema, chk)
    if cols is None:
        return None
    f = raw.frame
    if f.empty:
        chk.add(None, None, f"has no rows; expected one {raw.name[:-1]} per row")
        return None
    users = chk.ids(f, cols["user_id"], "user id")
    items = chk.ids(f, cols["item_id"], "item id")
    ts, missing, bad = col.parse_timestamps(f[cols["timestamp"]])
    chk.add(missing, cols["timestamp"], "timestamp is empty")
    chk.add(bad, cols["timestamp"], "timestamp is neither a number of seconds since 1970 nor "
                                    "ISO 8601 text (2024-05-01T12:00:00Z)")
    if item_ids is not None:
        unknown = ~col.is_in(items, item_ids) & (items != "").to_numpy(dtype=bool)
        chk.add(unknown, cols["item_id"], "item id is not in the items table (unknown item)")
    if user_ids is not None:
        unknown = ~col.is_in(users, user_ids) & (users != "").to_numpy(dtype=bool)
        chk.add(unknown, cols["user_id"], "user id is not in the users table (unknown user)")
    out = pd.DataFrame({"user_id": users.reset_index(drop=True),
                        "item_id": items.reset_index(drop=True), "timestamp": ts})
    if raw.name == "tags":
        tag = col.as_text(f[cols["tag"]]).str.strip()
        chk.add((tag == "").to_numpy(dtype=bool), cols["tag"], "tag is empty")
        out.insert(2, "tag", tag.to_numpy(dtype=object))
        return out
    value = np.full(len(f), np.nan)
    if "value" in cols:
        value, _, bad = col.parse_numbers(f[cols["value"]])
        chk.add(bad, cols["value"], "value is not a number")
    if "event" in cols:
        event, bad = col.parse_events(f[cols["event"]])
        chk.add(bad, cols["event"], "event type is not a lower-case word of letters, digits "
                                    "and _ (at most 32), for example view or purchase")
        unknown = ~col.is_in(event, np.array(KNOWN_EVENTS, dtype=object)) & ~bad
        chk.add(unknown, cols["event"], f"event type is none of {list(KNOWN_EVENTS)}; "
                "today it counts as a positive implicit event", "warning")
        events = event.reset_index(drop=True)
    else:
        events = pd.Series(["rating" if "value" in cols else "view"] * len(f), dtype=col.STRING)
    is_rating = (events == "rating").to_numpy(dtype=bool)
    chk.add(is_rating & np.isnan(value), cols.get("value", "value"),
            "a rating event needs a numeric value (the rating)")
    out["event"] = events
    out["value"] = value
    dup = col.duplicated_rows(col.codes(out["user_id"]), col.codes(out["item_id"]), ts,
                              col.codes(out["event"]))
    chk.add(dup, None, "repeats an earlier row (same user, item, timestamp and event)", "warning")
    return out


def validate_folder(path: str | Path, schema_path: str | Path | None = None) -> Report:
    """Read and check the dataset folder ``path``; see the module docstring."""
    from training.data.summary import summarize

    folder = Path(path)
    problems: list[Problem] = []
    markers = ("ratings.csv", "ratings.dat", "u.data")
    if folder.suffix.lower() == ".zip" or (folder.is_dir() and any(
            (folder / m).is_file() for m in markers)):
        problems.append(Problem("error", str(folder), None,
                                "is a MovieLens release, not a folder in hybridrec's format: "
                                "train on it as it is, or write it in the format with "
                                f"`hybridrec data convert {folder} OUT`"))
        return Report(problems, {}, None)
    if not folder.is_dir():
        problems.append(Problem("error", str(folder), None,
                                "no such folder; pass the folder holding interactions.csv "
                                "and items.csv"))
        return Report(problems, {}, None)
    try:
        schema = load_schema(folder, schema_path)
    except DataError as exc:  # a broken schema file is one more problem of the dataset
        problems.append(Problem("error", exc.path or str(folder), None,
                                exc.message.split(": ", 1)[-1] if exc.path else exc.message))
        return Report(problems, {}, None)
    raws: dict[str, RawTable | None] = {t: read_table(folder, t, schema)
                                        for t in ("items", "users", "interactions", "tags")}
    for name in ("interactions", "items"):
        if raws[name] is None:
            problems.append(Problem("error", str(folder / f"{name}.csv"), None,
                                    f"missing: every dataset needs an {name} table "
                                    f"({name}.csv, .parquet or .jsonl)"))
    for raw in raws.values():
        if raw is not None:
            for fp in raw.problems:
                rows = np.array([fp.row] if fp.row is not None else [], dtype=np.int64)
                problems.append(Problem("error", str(raw.path), fp.column, fp.message, rows))
    results: dict[str, Any] = {}
    attributes: dict[str, list[Attribute]] = {}
    for name, check in (("items", _check_items), ("users", _check_users)):
        raw = raws[name]
        if raw is not None and not raw.frame.columns.empty:
            got = check(raw, schema, _Checker(problems, raw))
            if got is not None:
                results[name], attributes[name] = got
    items = results.get("items")
    users = results.get("users")
    item_ids = None if items is None else pd.Series(items["item_id"])
    user_ids = None if users is None else pd.Series(users["user_id"])
    for name in ("interactions", "tags"):
        raw = raws[name]
        if raw is not None and not raw.frame.columns.empty:
            results[name] = _check_events(raw, schema, _Checker(problems, raw), item_ids,
                                          user_ids)
    inter = results.get("interactions")
    tables = None
    if items is not None and inter is not None:
        tables = CanonicalTables(
            name=schema.name or folder.resolve().name, interactions=inter, items=items,
            users=users, tags=results.get("tags"), attributes=attributes,
            files={n: r.path for n, r in raws.items() if r is not None}, schema=schema)
    problems.sort(key=lambda p: (p.severity != "error", p.file,
                                 int(p.rows[0]) if len(p.rows) else 0))
    summary = summarize(tables) if tables is not None else {}
    ok = not any(p.severity == "error" for p in problems)
    return Report(problems, summary, tables if ok else None)
