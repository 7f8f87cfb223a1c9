"""Reading and writing the tables of the dataset format (CSV, Parquet, JSON Lines).

Reading never types the values: CSV cells arrive as text (pyarrow's multi-threaded CSV reader,
every column a string, empty cells ``""``), Parquet and JSON Lines with their own types. Typing
and checking every value is :mod:`training.data.validate`'s job, so that a bad value becomes a
reported problem with its row instead of an exception. Rows are numbered from 1 in data order
(CSV: row ``r`` is line ``r + 1`` after the header unless a quoted cell holds a line break;
JSON Lines: rows are lines).
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from training.data.schema import FORMATS, SCHEMA_FILES, TABLES, Schema


@dataclass
class FileProblem:
    """A problem found while reading a file (before any value is typed)."""

    row: int | None
    message: str
    column: str | None = None


@dataclass
class RawTable:
    """One table as read from its file."""

    name: str
    path: Path
    format: str
    frame: pd.DataFrame
    problems: list[FileProblem] = field(default_factory=list)
    rows: np.ndarray | None = None
    """1-based data row of each frame row (None: position + 1; differs after skipped rows)."""

    def row_numbers(self) -> np.ndarray:
        """The 1-based data row number of every frame row."""
        if self.rows is not None:
            return self.rows
        return np.arange(1, len(self.frame) + 1, dtype=np.int64)


def find_table(folder: Path, name: str, schema: Schema) -> Path | None:
    """The file holding table ``name``: the schema's ``file``, else ``<name>.<ext>``."""
    declared = schema.table(name).file
    if declared:
        return folder / declared
    hits = [folder / f"{name}{ext}" for ext in FORMATS if (folder / f"{name}{ext}").is_file()]
    return hits[0] if hits else None


def is_dataset_folder(path: Path) -> bool:
    """Whether ``path`` is a folder in this format (it has an interactions table or a schema)."""
    if not path.is_dir():
        return False
    names = {p.name for p in path.iterdir()}
    return any(f"interactions{ext}" in names for ext in FORMATS) or any(
        n in names for n in SCHEMA_FILES)


def _string_frame(table: pa.Table) -> pd.DataFrame:
    return table.to_pandas(types_mapper={pa.string(): pd.StringDtype("pyarrow"),
                                         pa.large_string(): pd.StringDtype("pyarrow")}.get)


_Read = tuple[pd.DataFrame, list[FileProblem], np.ndarray | None]


def _read_csv(path: Path) -> _Read:
    with open(path, encoding="utf-8", errors="replace", newline="") as fh:
        first = fh.readline().lstrip("\ufeff")
    header = next(csv.reader([first]), []) if first.strip() else []
    if not header:
        return pd.DataFrame(), [FileProblem(None, "is empty; expected a header row of column "
                                                  "names, then one row per record")], None
    dupes = sorted({h for h in header if header.count(h) > 1})
    if dupes:
        return pd.DataFrame(), [FileProblem(None, f"header names column(s) {dupes} twice")], None
    bad_rows: list[FileProblem] = []

    def on_invalid(row: pacsv.InvalidRow) -> str:
        bad_rows.append(FileProblem(
            None if row.number is None else row.number - 1,
            f"expected {row.expected_columns} fields, found {row.actual_columns}"))
        return "skip"

    def read(threads: bool) -> pa.Table:
        return pacsv.read_csv(
            path,
            read_options=pacsv.ReadOptions(use_threads=threads),
            parse_options=pacsv.ParseOptions(invalid_row_handler=on_invalid,
                                             newlines_in_values=True),
            convert_options=pacsv.ConvertOptions(
                column_types=dict.fromkeys(header, pa.string()), strings_can_be_null=False,
                quoted_strings_can_be_null=False))

    try:
        table = read(True)
        if bad_rows:  # only a single-threaded read numbers the bad lines
            bad_rows.clear()
            table = read(False)
    except (pa.ArrowInvalid, OSError) as exc:
        text = str(exc)
        if "utf8" in text.lower():
            text = "is not valid UTF-8 text; re-save it as UTF-8"
        return pd.DataFrame(), [FileProblem(None, f"could not be read: {text}")], None
    rows = None
    if bad_rows:
        skipped = np.array(sorted(p.row for p in bad_rows if p.row is not None), dtype=np.int64)
        total = table.num_rows + len(bad_rows)
        keep = np.setdiff1d(np.arange(1, total + 1, dtype=np.int64), skipped)
        rows = keep[: table.num_rows]
    return _string_frame(table), bad_rows, rows


def _read_jsonl(path: Path) -> _Read:
    records: list[dict[str, object]] = []
    numbers: list[int] = []
    problems: list[FileProblem] = []
    try:
        frame = pd.read_json(path, lines=True, dtype=False, convert_dates=False,
                             encoding="utf-8")
        return frame, problems, None
    except ValueError:
        pass  # find the bad lines (only on this error path is there a loop over lines)
    with open(path, encoding="utf-8", errors="replace") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as exc:
                problems.append(FileProblem(number, f"is not valid JSON ({exc.msg})"))
                continue
            if not isinstance(value, dict):
                problems.append(FileProblem(number, "expected a JSON object per line, got "
                                                    f"{type(value).__name__}"))
                continue
            records.append(value)
            numbers.append(number)
    return pd.DataFrame(records), problems, np.array(numbers, dtype=np.int64)


def _read_parquet(path: Path) -> _Read:
    try:
        return _string_frame(pq.read_table(path)), [], None
    except (pa.ArrowException, OSError) as exc:
        return pd.DataFrame(), [FileProblem(None, f"is not a readable Parquet file: {exc}")], None


def read_table(folder: Path, name: str, schema: Schema) -> RawTable | None:
    """Read table ``name`` from ``folder``; None when the file is absent."""
    path = find_table(folder, name, schema)
    if path is None:
        return None
    fmt = FORMATS.get(path.suffix.lower(), "")
    if not path.is_file():
        return RawTable(name, path, fmt, pd.DataFrame(),
                        [FileProblem(None, "no such file (named by the schema)")])
    reader = {"csv": _read_csv, "jsonl": _read_jsonl, "parquet": _read_parquet}[fmt]
    frame, problems, rows = reader(path)
    return RawTable(name, path, fmt, frame, problems, rows)


def write_table(frame: pd.DataFrame, folder: Path, name: str, fmt: str,
                list_columns: list[str], separator: str = "|") -> Path:
    """Write ``frame`` as ``<folder>/<name>.<fmt>``; CSV lists are joined with ``separator``.

    The file is written under a temporary name and renamed, so a reader never sees half a file.
    """
    if name not in TABLES:
        raise ValueError(f"unknown table {name!r}")
    ext = {"csv": ".csv", "parquet": ".parquet", "jsonl": ".jsonl"}[fmt]
    path = folder / f"{name}{ext}"
    tmp = folder / f".{name}{ext}.tmp"
    out = frame.copy()
    if fmt == "csv":
        for col in list_columns:
            out[col] = [separator.join(v) for v in out[col]]
        out.to_csv(tmp, index=False, lineterminator="\n")
    elif fmt == "parquet":
        out.to_parquet(tmp, index=False)
    else:
        for col in list_columns:
            out[col] = [list(v) for v in out[col]]
        buf = io.StringIO()
        out.to_json(buf, orient="records", lines=True, force_ascii=False)
        tmp.write_text(buf.getvalue(), encoding="utf-8")
    tmp.replace(path)
    return path
