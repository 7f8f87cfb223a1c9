"""The project's dataset format: round trip with MovieLens, the bookshop, exact error locations."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hybridrec import cli
from shared.contracts.errors import DataError
from tests.support.bookshop import write_bookshop
from training.data import load_dataset, load_movielens
from training.data.generic import load_generic, write_generic
from training.data.validate import validate_folder

TABLES = ("interactions", "items", "users", "links", "tags")


@pytest.mark.parametrize("fmt", ["csv", "parquet", "jsonl"])
def test_ml_latest_small_round_trip_equals_the_movielens_reader(
    bundled_zip: Path, tmp_path: Path, fmt: str
) -> None:
    movielens = load_movielens(bundled_zip)
    out = tmp_path / "ml"
    assert cli.main(["data", "convert", str(bundled_zip), str(out), "--format", fmt]) == 0
    assert (out / f"interactions.{fmt}").is_file() and (out / "schema.yaml").is_file()
    generic = load_dataset(out)  # dispatched to the generic reader by the folder's content
    assert generic.info["format"] == "hybridrec"
    assert generic.info["id_maps"] == {"users": "numeric", "items": "numeric"}
    assert generic.name == movielens.name == "ml-latest-small"
    for name in TABLES:
        a, b = getattr(movielens, name), getattr(generic, name)
        assert a is not None and b is not None, name
        if name == "interactions":  # rating events weigh their value (event_weights)
            a = a.assign(weight=a["rating"])
        pd.testing.assert_frame_equal(a, b, check_exact=True, obj=name)
    assert len(generic.interactions) == 100_836 and len(generic.tags) > 3000
    assert sum(len(g) for g in generic.items["genres"]) > 20_000


def test_convert_names_a_release_and_refuses_a_missing_one(tmp_path: Path) -> None:
    code = cli.main(["data", "convert", "ml-1m", str(tmp_path / "x"), "--data-dir",
                     str(tmp_path)])
    assert code == 2 and not (tmp_path / "x").exists()


@pytest.mark.parametrize(("release", "fmt"), [("ml1m_release", "jsonl"),
                                             ("ml100k_release", "parquet")])
def test_releases_with_users_round_trip(request, tmp_path: Path, release: str, fmt: str) -> None:
    movielens = load_movielens(request.getfixturevalue(release)())
    assert movielens.user_feature_columns == ["gender", "age", "occupation"]
    generic = load_generic(write_generic(movielens, tmp_path / "out", fmt))
    for name in ("interactions", "items", "users"):
        a = getattr(movielens, name)
        if name == "interactions":  # rating events weigh their value (event_weights)
            a = a.assign(weight=a["rating"])
        pd.testing.assert_frame_equal(a, getattr(generic, name), obj=name)


def test_bookshop_validates_clean_and_maps_string_ids(tmp_path: Path, capsys) -> None:
    folder = write_bookshop(tmp_path / "bookshop")
    code = cli.main(["data", "validate", str(folder), "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0 and report["ok"] and report["problems"] == []
    summary = report["summary"]
    assert set(summary["interactions"]["events"]) == {"view", "add_to_cart", "purchase",
                                                      "hide", "dislike"}
    assert summary["interactions"]["value_range"] is None  # implicit only: no ratings
    assert summary["items"]["attributes"]["categories"]["distinct"] == 12
    assert summary["items"]["attributes"]["price"]["type"] == "numeric"
    assert summary["users"]["attributes"]["country"]["type"] == "categorical"

    ds = load_dataset(folder)
    assert ds.info["id_maps"] == {"users": "dense", "items": "dense"}
    assert ds.id_maps is not None
    items = ds.id_maps["items"]
    # ids are dense in sorted order and map back to the files' strings
    assert items.to_str(ds.items["item_id"]).tolist()[:2] == ["sku-000001", "sku-000002"]
    raw = pd.read_parquet(folder / "interactions.parquet")
    negative = raw["action"].isin(["hide", "dislike"])
    pairs = set(zip(ds.id_maps["users"].to_str(ds.interactions["user_id"]),
                    items.to_str(ds.interactions["item_id"]), strict=True))
    hidden = set(zip(raw.loc[negative, "customer"], raw.loc[negative, "sku"], strict=True))
    assert pairs == set(zip(raw["customer"], raw["sku"], strict=True)) - hidden
    assert ds.negatives is not None
    assert set(zip(ds.id_maps["users"].to_str(ds.negatives["user_id"]),
                   items.to_str(ds.negatives["item_id"]), strict=True)) == hidden
    assert (ds.interactions["rating"] == 4.0).all()  # implicit events -> --implicit-rating
    assert ds.items["genres"].map(len).min() >= 1  # the first categorical attribute
    assert ds.items["overview"].str.contains("book about").all()  # text attributes
    assert ds.item_attributes is not None and (~ds.item_attributes["available"]).sum() > 0


def _broken_bookshop(folder: Path) -> Path:
    write_bookshop(folder)
    items = pd.read_csv(folder / "items.csv", dtype=str, keep_default_na=False)
    items.loc[6, "title"] = "  "  # row 7
    items.loc[8, "price"] = "twelve"  # row 9
    items.loc[10, "available"] = "maybe"  # row 11
    again = items.iloc[[1]].assign(title="Again")  # row 241 repeats row 2's id
    bad_id = items.iloc[[20]].assign(sku="sku 999")  # row 242: a space in the id
    pd.concat([items, again, bad_id]).to_csv(folder / "items.csv", index=False)
    inter = pd.read_parquet(folder / "interactions.parquet")
    inter.loc[2, "ts"] = "yesterday"  # row 3
    inter.loc[3, "sku"] = "sku-999999"  # row 4: unknown item
    inter.loc[5, "customer"] = ""  # row 6
    inter.loc[7, "action"] = "Bought It"  # row 8
    inter.to_parquet(folder / "interactions.parquet", index=False)
    lines = (folder / "users.jsonl").read_text().splitlines()
    lines[1] = lines[1].replace('"age":', '"age":"old","was":')  # line 2
    lines.append(lines[3])  # line 121 repeats line 4
    lines.append("{not json")  # line 122
    (folder / "users.jsonl").write_text("\n".join(lines) + "\n")
    return folder


def test_broken_bookshop_reports_exact_file_row_column(tmp_path: Path, capsys) -> None:
    folder = _broken_bookshop(tmp_path / "broken")
    report = validate_folder(folder)
    got = {(Path(p.file).name, p.column, tuple(int(r) for r in p.rows))
           for p in report.errors}
    assert got == {
        ("items.csv", "sku", (241,)),  # duplicate item
        ("items.csv", "title", (7,)),
        ("items.csv", "price", (9,)),
        ("items.csv", "available", (11,)),
        ("items.csv", "sku", (242,)),  # bad id
        ("interactions.parquet", "ts", (3,)),
        ("interactions.parquet", "sku", (4,)),  # unknown item
        ("interactions.parquet", "customer", (6,)),
        ("interactions.parquet", "action", (8,)),
        ("users.jsonl", None, (122,)),  # not JSON
        ("users.jsonl", "age", (2,)),
        ("users.jsonl", "customer", (121,)),  # duplicate user
    }
    messages = {(Path(p.file).name, p.column): p.message for p in report.errors}
    assert "empty" in messages[("items.csv", "title")]
    assert "not a number" in messages[("items.csv", "price")]
    assert "ISO 8601" in messages[("interactions.parquet", "ts")]
    assert report.tables is None
    assert cli.main(["data", "validate", str(folder)]) == 1
    out = capsys.readouterr().out
    assert "items.csv, row 7, column 'title': title is empty" in out
    assert "NOT valid: 12 error(s)" in out
    with pytest.raises(DataError, match="12 problem"):
        load_dataset(folder)


def test_no_schema_plain_csv_defaults(tmp_path: Path) -> None:
    (tmp_path / "interactions.csv").write_text(
        "user_id,item_id,timestamp,rating\nu1,a,2024-01-01,4.5\nu1,b,1704153600,2\n"
        "u2,a,2024-01-03T10:00:00+01:00,5\n")
    (tmp_path / "items.csv").write_text(
        "item_id,title,genres,price,description,isbn_id\na,Alpha,x|y,3.5,About a,111\n"
        "b,Beta,,,,\n")
    report = validate_folder(tmp_path)
    assert report.ok, [p.render() for p in report.problems]
    types = {a.name: (a.type, a.list) for a in report.tables.attributes["items"]}
    assert types == {"genres": ("categorical", True), "price": ("numeric", False),
                     "description": ("text", False), "isbn_id": ("external_id", False)}
    ts = report.tables.interactions["timestamp"].tolist()
    assert ts == [1704067200, 1704153600, 1704272400]
    ds = load_dataset(tmp_path)
    assert ds.interactions["rating"].tolist() == [4.5, 2.0, 5.0]  # "rating" column = value
    assert ds.items["genres"].tolist() == [["x", "y"], []]


def test_wrong_field_count_and_missing_columns_are_located(tmp_path: Path) -> None:
    (tmp_path / "interactions.csv").write_text("user,item_id,timestamp\nu1,a,1\n")
    (tmp_path / "items.csv").write_text("item_id,title\na,Alpha\nb,Beta,extra\nc,Gamma\n")
    report = validate_folder(tmp_path)
    got = {(Path(p.file).name, p.column, tuple(int(r) for r in p.rows), p.message[:30])
           for p in report.errors}
    assert ("items.csv", None, (2,), "expected 2 fields, found 3") in got
    assert any(f == "interactions.csv" and c == "user_id" and "missing required" in m
               for f, c, _, m in got)


def test_negative_events_are_left_out_and_ratings_need_values(tmp_path: Path) -> None:
    (tmp_path / "items.jsonl").write_text(
        '{"item_id": "a", "title": "A"}\n{"item_id": "b", "title": "B"}\n')
    (tmp_path / "interactions.csv").write_text(
        "user_id,item_id,timestamp,event,value\nu,a,1,view,\nu,b,2,dislike,\nv,a,3,rating,\n"
        "v,b,4,rating,3\n")
    report = validate_folder(tmp_path)
    assert [(p.column, p.rows.tolist()) for p in report.errors] == [("value", [3])]
    (tmp_path / "interactions.csv").write_text(
        "user_id,item_id,timestamp,event,value\nu,a,1,view,\nu,b,2,dislike,\nv,b,4,rating,3\n")
    ds = load_dataset(tmp_path)
    assert ds.info["negative_pairs"] == 1 and ds.negatives is not None  # kept apart
    assert np.array_equal(ds.interactions["rating"].to_numpy(), np.array([4.0, 3.0], "float32"))


def test_rows_after_a_skipped_csv_line_keep_their_numbers(tmp_path: Path) -> None:
    (tmp_path / "interactions.csv").write_text("user_id,item_id,timestamp\nu1,a,1\nu2,zz,2\n")
    (tmp_path / "items.csv").write_text(
        "item_id,title\na,Alpha\nb,Beta,extra\nc,Gamma\nd,\ne,Epsilon\n")
    (tmp_path / "users.csv").write_text("user_id,age\nu1,30\n")
    report = validate_folder(tmp_path)
    got = {(Path(p.file).name, p.column, tuple(p.rows.tolist())) for p in report.errors}
    assert got == {
        ("items.csv", None, (2,)),  # wrong field count: the line is skipped...
        ("items.csv", "title", (4,)),  # ...and the rows after it keep their own numbers
        ("interactions.csv", "item_id", (2,)),  # unknown item
        ("interactions.csv", "user_id", (2,)),  # unknown user (a users table exists)
    }
