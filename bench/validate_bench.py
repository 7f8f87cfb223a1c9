"""How long ``hybridrec data validate`` takes on a generated dataset of N interactions.

    python -m bench.validate_bench --rows 1000000 --out /tmp/validate-bench

Writes ``interactions.csv`` (string user and item ids, integer and ISO 8601 timestamps,
view/purchase/rating events, a value on ratings) and ``items.csv`` (titles, a category list,
a price, an available flag), then times, in the same run (wall and CPU seconds): the baseline
(pandas reading both files as text, no checks) and the full validation (read, type and check
every column, the summary), and the mapping to the int64 Dataset training uses. Prints one
JSON line; the figures are in docs/own-data.md.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd


def generate(folder: Path, rows: int, n_items: int, n_users: int, seed: int = 0) -> None:
    """Write the two CSV files into ``folder``."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    items = pd.DataFrame({
        "item_id": [f"sku-{i:07d}" for i in range(n_items)],
        "title": [f"Item {i}" for i in range(n_items)],
        "categories": np.array(["a|b", "b", "c|d|e", "f"])[rng.integers(0, 4, n_items)],
        "price": np.round(rng.uniform(1, 100, n_items), 2),
        "available": np.where(rng.random(n_items) < 0.95, "true", "false"),
    })
    items.to_csv(folder / "items.csv", index=False)
    ts = rng.integers(1_600_000_000, 1_700_000_000, rows)
    iso = rng.random(rows) < 0.5
    ts_text = np.where(iso, pd.to_datetime(ts, unit="s").strftime("%Y-%m-%dT%H:%M:%SZ"),
                       ts.astype(str))
    event = np.array(["view", "purchase", "rating"])[rng.choice(3, rows, p=[0.8, 0.1, 0.1])]
    value = np.where(event == "rating", (rng.integers(1, 11, rows) / 2).astype(str), "")
    zipf = np.minimum(rng.zipf(1.3, rows), n_items) - 1
    pd.DataFrame({
        "user_id": np.char.add("user-", rng.integers(0, n_users, rows).astype(str)),
        "item_id": items["item_id"].to_numpy()[zipf],
        "timestamp": ts_text, "event": event, "value": value,
    }).to_csv(folder / "interactions.csv", index=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--items", type=int, default=50_000)
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--out", default="/tmp/hybridrec-validate-bench")
    args = parser.parse_args()
    from training.data.generic import to_dataset
    from training.data.validate import validate_folder

    folder = Path(args.out)
    if not (folder / "interactions.csv").exists():
        generate(folder, args.rows, args.items, args.users)
    t0, c0 = time.perf_counter(), time.process_time()
    for name in ("interactions.csv", "items.csv"):
        pd.read_csv(folder / name, dtype=str, keep_default_na=False)
    baseline, baseline_cpu = time.perf_counter() - t0, time.process_time() - c0
    t0, c0 = time.perf_counter(), time.process_time()
    report = validate_folder(folder)
    validate, validate_cpu = time.perf_counter() - t0, time.process_time() - c0
    assert report.tables is not None, [p.render() for p in report.problems[:5]]
    t0 = time.perf_counter()
    to_dataset(report.tables)
    mapping = time.perf_counter() - t0
    print(json.dumps({"rows": args.rows, "items": args.items, "errors": len(report.errors),
                      "read_as_text_s": round(baseline, 2), "validate_s": round(validate, 2),
                      "validate_over_read": round(validate / baseline, 2),
                      "read_as_text_cpu_s": round(baseline_cpu, 2),
                      "validate_cpu_s": round(validate_cpu, 2),
                      "map_to_int_ids_s": round(mapping, 2)}))


if __name__ == "__main__":
    main()
