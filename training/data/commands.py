"""``hybridrec data validate`` and ``hybridrec data convert``: the bodies behind the verbs."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import TextIO

from shared.contracts.errors import DataError
from training.data.download import DATASETS


def run_validate(path: str, *, schema: str | None = None, as_json: bool = False,
                 max_rows: int = 20, out: TextIO | None = None) -> int:
    """Print every problem and the summary; 0 when the data is usable, 1 on errors."""
    from training.data.validate import validate_folder

    out = out or sys.stdout
    t0 = time.perf_counter()
    report = validate_folder(path, schema)
    seconds = round(time.perf_counter() - t0, 2)
    n_err = len(report.errors)
    n_warn = len(report.problems) - n_err
    if as_json:
        json.dump({"ok": report.ok, "errors": n_err, "warnings": n_warn, "seconds": seconds,
                   "problems": [p.to_dict() for p in report.problems],
                   "summary": report.summary}, out, indent=2, default=str)
        out.write("\n")
        return 0 if report.ok else 1
    for p in report.problems:
        out.write(p.render(max_rows) + "\n")
    if report.summary:
        out.write(json.dumps(report.summary, indent=2, default=str) + "\n")
    verdict = "valid" if report.ok else "NOT valid"
    out.write(f"{path}: {verdict}: {n_err} error(s), {n_warn} warning(s) "
              f"(problems are grouped: each names its file, rows and column; {seconds} s)\n")
    return 0 if report.ok else 1


def resolve_release(source: str, data_dir: str = "data") -> Path:
    """A MovieLens release name (``ml-latest-small``, ...) -> its zip; a path stays a path."""
    if source in DATASETS:
        zipped = Path(data_dir) / f"{source}.zip"
        if not zipped.exists():
            raise DataError(f"{source} is not downloaded; run `hybridrec data download {source}`"
                            f" (writes {zipped}) or pass the release's folder or zip",
                            path=str(zipped))
        return zipped
    return Path(source)


def run_convert(source: str, out: str, *, fmt: str = "csv", data_dir: str = "data",
                item_text: str | None = None) -> Path:
    """Read a MovieLens release and write it in the project's format; validate the result."""
    from training.data.generic import raise_on_errors, write_generic
    from training.data.movielens import load_movielens
    from training.data.validate import validate_folder

    ds = load_movielens(resolve_release(source, data_dir), item_text)
    folder = write_generic(ds, out, fmt)
    raise_on_errors(validate_folder(folder))
    print(f"{ds.name}: {len(ds.interactions)} interactions, {len(ds.items)} items, "
          f"{len(ds.users)} users written to {folder} ({fmt})", file=sys.stderr)
    return folder
