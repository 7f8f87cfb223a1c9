"""The schema of hybridrec's own dataset format (docs/own-data.md is the user's reference).

A dataset is a folder of up to four tables, each a CSV (UTF-8, header row), Parquet or
JSON Lines file named after the table (``interactions.csv``, ``items.parquet``,
``users.jsonl``, ``tags.csv``), plus an optional ``schema.yaml`` (or ``schema.json``):

* ``interactions`` (required): ``user_id``, ``item_id``, ``timestamp``, optional ``event``
  (event type) and ``value`` (the rating for ``rating`` events);
* ``items`` (required): ``item_id``, ``title``, optional ``available`` flag, then attributes;
* ``users`` (optional): ``user_id``, then attributes;
* ``tags`` (optional): user tag events ``user_id``, ``item_id``, ``tag``, ``timestamp``.

Attribute types: ``categorical`` (one value, or a list when ``list: true``: a native list in
Parquet/JSON Lines, ``|``-separated text in CSV), ``numeric``, ``text`` (free text for the
item's content vector) and ``external_id`` (kept for joins, never a feature). With no schema,
or for columns the schema does not name, types come from :func:`default_attribute`.

Ids (users and items) are strings of 1..128 characters from :data:`ID_ALPHABET`, never only
dots (they appear in URL paths and Redis keys). This module holds only the declarations;
reading is :mod:`training.data.tables`, checking :mod:`training.data.validate`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from shared.contracts.errors import DataError
from shared.contracts.ids import ID_ALPHABET as ID_ALPHABET  # one alphabet: files, bundle, API
from shared.contracts.ids import ID_PATTERN as ID_PATTERN

DOTS = r"\.+"
"""Ids made only of dots (``.``, ``..``) are refused: URL paths would resolve them."""
ID_RE = re.compile(ID_PATTERN)
EVENT_PATTERN = r"[a-z][a-z0-9_]{0,31}"
"""An event type: lower case letter, then letters, digits or ``_`` (at most 32)."""

POSITIVE_EVENTS = ("view", "click", "add_to_cart", "purchase", "like", "rating")
"""Event types with a documented meaning that say the user wanted the item (``rating``
carries its value)."""
NEGATIVE_EVENTS = ("dislike", "hide")
"""Event types that say the user did not want the item (kept out of positives)."""
KNOWN_EVENTS = POSITIVE_EVENTS + NEGATIVE_EVENTS

TABLES = ("interactions", "items", "users", "tags")
FORMATS = {".csv": "csv", ".parquet": "parquet", ".jsonl": "jsonl", ".ndjson": "jsonl"}
SCHEMA_FILES = ("schema.yaml", "schema.yml", "schema.json")

ROLES: dict[str, tuple[str, ...]] = {
    "interactions": ("user_id", "item_id", "timestamp", "event", "value"),
    "items": ("item_id", "title", "available"),
    "users": ("user_id",),
    "tags": ("user_id", "item_id", "tag", "timestamp"),
}
"""The fixed columns of each table, by role name (the default column name is the role)."""
REQUIRED_ROLES: dict[str, tuple[str, ...]] = {
    "interactions": ("user_id", "item_id", "timestamp"),
    "items": ("item_id", "title"),
    "users": ("user_id",),
    "tags": ("user_id", "item_id", "tag", "timestamp"),
}
ROLE_ALIASES: dict[str, dict[str, tuple[str, ...]]] = {
    "interactions": {"event": ("event", "event_type", "type"), "value": ("value", "rating")},
}
"""Header names accepted for a role when the schema does not name its column."""

AttributeType = Literal["categorical", "numeric", "text", "external_id"]
ATTRIBUTE_TYPES: tuple[str, ...] = ("categorical", "numeric", "text", "external_id")
TEXT_NAMES = ("description", "overview", "summary", "synopsis", "text", "body", "abstract")
"""Column names that default to ``text`` attributes (items only)."""


@dataclass(frozen=True)
class Attribute:
    """One attribute column of items or users."""

    name: str
    type: AttributeType
    list: bool = False


@dataclass
class TableSchema:
    """Where a table lives and what its columns mean.

    Attributes:
        name: ``interactions``, ``items``, ``users`` or ``tags``.
        file: File name inside the dataset folder ("" = look for ``<name>.<ext>``).
        columns: Role -> column header, for the fixed roles of :data:`ROLES`.
        attributes: Declared attributes by column name (the rest are inferred).
        separator: List separator inside CSV text cells.
    """

    name: str
    file: str = ""
    columns: dict[str, str] = field(default_factory=dict)
    attributes: dict[str, Attribute] = field(default_factory=dict)
    separator: str = "|"


@dataclass
class Schema:
    """A dataset's schema: the tables' declarations and an optional dataset name."""

    name: str = ""
    tables: dict[str, TableSchema] = field(default_factory=dict)
    source: str = ""
    events: dict[str, float | str] = field(default_factory=dict)
    """Event type -> weight overrides (``events:`` in the file; see
    :mod:`training.data.event_weights`)."""

    def table(self, name: str) -> TableSchema:
        """The declaration of ``name`` (an empty one when the schema has none)."""
        return self.tables.get(name) or TableSchema(name)


def default_attribute(table: str, column: str, *, numeric: bool, has_lists: bool) -> Attribute:
    """The type a column gets when the schema does not declare it.

    ``*_id`` columns are external ids; items' ``description``/``overview``/... are text;
    a column whose every non-empty value is a number is numeric; a column holding lists
    (or ``|`` in CSV text) is a categorical list; anything else is categorical.
    """
    if column.endswith("_id") or column == "id":
        return Attribute(column, "external_id")
    if table == "items" and column in TEXT_NAMES:
        return Attribute(column, "text")
    if numeric:
        return Attribute(column, "numeric")
    return Attribute(column, "categorical", list=has_lists)


def _fail(source: str, message: str) -> DataError:
    return DataError(f"{message}; see the schema reference in docs/own-data.md", path=source)


def _parse_attribute(source: str, table: str, name: str, spec: Any) -> Attribute:
    if isinstance(spec, str):
        spec = {"type": spec}
    if not isinstance(spec, dict) or spec.get("type") not in ATTRIBUTE_TYPES:
        raise _fail(source, f"{table}.attributes.{name}: expected a type among "
                            f"{list(ATTRIBUTE_TYPES)} (or {{type: ..., list: true}}), got {spec!r}")
    unknown = set(spec) - {"type", "list"}
    if unknown:
        raise _fail(source, f"{table}.attributes.{name}: unknown key(s) {sorted(unknown)}")
    is_list = bool(spec.get("list", False))
    if is_list and spec["type"] != "categorical":
        raise _fail(source, f"{table}.attributes.{name}: only categorical attributes can be lists")
    return Attribute(name, spec["type"], list=is_list)


def _parse_table(source: str, name: str, spec: Any) -> TableSchema:
    if not isinstance(spec, dict):
        raise _fail(source, f"{name}: expected a mapping, got {spec!r}")
    unknown = set(spec) - {"file", "columns", "attributes", "separator"}
    if unknown:
        raise _fail(source, f"{name}: unknown key(s) {sorted(unknown)}; expected file, columns, "
                            "attributes, separator")
    columns = spec.get("columns") or {}
    bad_roles = set(columns) - set(ROLES[name])
    if not isinstance(columns, dict) or bad_roles:
        raise _fail(source, f"{name}.columns: roles must be among {list(ROLES[name])}, "
                            f"got {sorted(bad_roles) if bad_roles else columns!r}")
    attributes = spec.get("attributes") or {}
    if not isinstance(attributes, dict) or (attributes and name not in ("items", "users")):
        raise _fail(source, f"{name}.attributes: only items and users have attributes "
                            "(a mapping of column name to type)")
    separator = str(spec.get("separator", "|"))
    if len(separator) != 1:
        raise _fail(source, f"{name}.separator: expected one character, got {separator!r}")
    file = str(spec.get("file", ""))
    if file and (Path(file).suffix.lower() not in FORMATS or "/" in file or "\\" in file):
        raise _fail(source, f"{name}.file: expected a file name in the dataset folder ending "
                            f"in {sorted(FORMATS)}, got {file!r}")
    return TableSchema(
        name, file=file, columns={str(k): str(v) for k, v in columns.items()},
        attributes={str(k): _parse_attribute(source, name, str(k), v)
                    for k, v in attributes.items()},
        separator=separator)


def parse_schema(doc: Any, source: str = "schema") -> Schema:
    """Build a :class:`Schema` from a parsed YAML/JSON document."""
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise _fail(source, f"expected a mapping at the top level, got {type(doc).__name__}")
    unknown = set(doc) - {"name", "events", *TABLES}
    if unknown:
        raise _fail(source, f"unknown top-level key(s) {sorted(unknown)}; expected name, "
                            f"events and tables among {list(TABLES)}")
    tables = {t: _parse_table(source, t, doc[t]) for t in TABLES if doc.get(t) is not None}
    events: dict[str, float | str] = {}
    if doc.get("events") is not None:
        from shared.contracts.errors import ConfigError
        from training.data.event_weights import check_weights

        try:
            events = check_weights(doc["events"], "events")
        except ConfigError as exc:
            raise _fail(source, str(exc)) from exc
    return Schema(name=str(doc.get("name", "")), tables=tables, source=source, events=events)


def load_schema(folder: Path, schema_path: str | Path | None = None) -> Schema:
    """Read ``schema_path`` or the folder's ``schema.yaml``/``.yml``/``.json``; empty if none."""
    path = Path(schema_path) if schema_path else next(
        (folder / n for n in SCHEMA_FILES if (folder / n).is_file()), None)
    if path is None:
        return Schema()
    if not path.is_file():
        raise DataError("no such schema file", path=str(path))
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix.lower() == ".json":
            doc = json.loads(text)
        else:
            import yaml

            doc = yaml.safe_load(text)
    except Exception as exc:  # yaml.YAMLError / json.JSONDecodeError, with their position
        raise DataError(f"is not valid {path.suffix.lstrip('.').upper()}: {exc}",
                        path=str(path)) from exc
    return parse_schema(doc, str(path))


def dump_schema(schema: Schema) -> dict[str, Any]:
    """The YAML/JSON document of ``schema`` (inverse of :func:`parse_schema`)."""
    doc: dict[str, Any] = {"name": schema.name} if schema.name else {}
    if schema.events:
        doc["events"] = dict(schema.events)
    for name, table in schema.tables.items():
        spec: dict[str, Any] = {}
        if table.file:
            spec["file"] = table.file
        if table.columns:
            spec["columns"] = dict(table.columns)
        if table.attributes:
            spec["attributes"] = {
                a.name: ({"type": a.type, "list": True} if a.list else a.type)
                for a in table.attributes.values()}
        if table.separator != "|":
            spec["separator"] = table.separator
        doc[name] = spec
    return doc
