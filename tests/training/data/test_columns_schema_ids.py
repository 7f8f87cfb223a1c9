"""The format's building blocks: id alphabet, value parsers, schema files, the id map."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from shared.contracts.errors import DataError
from training.data import columns as col
from training.data.ids import build_id_map
from training.data.schema import load_schema


def _text(values: list[str]) -> pd.Series:
    return pd.Series(values, dtype=col.STRING)


def test_id_alphabet_and_length() -> None:
    good = ["a", "A-9", "sku-000123", "user@example.com", "ns:42", "x_y.z", "x" * 128, "0"]
    bad = ["a b", "a/b", "é", "x" * 129, ".", "..", "a%2F", "a?b", "a#b", "tab\t"]
    text, empty, invalid = col.parse_ids(_text([*good, *bad, ""]))
    assert not invalid[: len(good)].any()
    assert invalid[len(good): -1].all()
    assert empty.tolist() == [False] * (len(good) + len(bad)) + [True]
    assert not invalid[-1]  # empty is reported as empty, not as a bad id
    assert text.tolist()[0] == "a"


def test_native_integer_ids_read_as_decimal_text() -> None:
    text, _, bad = col.parse_ids(pd.Series([1, 296, 10**12]))
    assert text.tolist() == ["1", "296", "1000000000000"] and not bad.any()
    text, _, _ = col.parse_ids(pd.Series([1.0, 2.0, np.nan]))
    assert text.tolist() == ["1", "2", ""]


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("964982703", 964982703),
        ("964982703.9", 964982703),
        ("2024-05-01T12:00:00Z", 1714564800),
        ("2024-05-01T14:00:00+02:00", 1714564800),
        ("2024-05-01 12:00", 1714564800),
        ("2024-05-01", 1714521600),
    ],
)
def test_timestamps(value: str, seconds: int) -> None:
    out, missing, bad = col.parse_timestamps(_text([value]))
    assert out.tolist() == [seconds] and not missing.any() and not bad.any()


def test_bad_and_missing_timestamps_and_numbers() -> None:
    _, missing, bad = col.parse_timestamps(_text(["", "yesterday", "2024-13-45", "12"]))
    assert missing.tolist() == [True, False, False, False]
    assert bad.tolist() == [False, True, True, False]
    vals, missing, bad = col.parse_numbers(_text(["1.5", " 2 ", "", "x", "inf", "1e3", "-.5"]))
    assert bad.tolist() == [False, False, False, True, True, False, False]
    assert missing.tolist() == [False, False, True, False, False, False, False]
    assert vals[[0, 1, 5, 6]].tolist() == [1.5, 2.0, 1000.0, -0.5]


def test_flags_events_lists() -> None:
    flags, bad = col.parse_flags(_text(["TRUE", "no", "", "1", "0", "maybe"]))
    assert flags.tolist()[:5] == [True, False, True, True, False] and bad.tolist()[-1]
    events, bad = col.parse_events(_text(["View", " purchase ", "add_to_cart", "bought it", ""]))
    assert events.tolist()[:3] == ["view", "purchase", "add_to_cart"]
    assert bad.tolist() == [False, False, False, True, True]
    lists = col.parse_lists(_text(["a| b|", "", " c ", "x|x"]), "|")
    assert lists.tolist() == [["a", "b"], [], ["c"], ["x", "x"]]
    native = col.parse_lists(pd.Series([["a", " b"], None, np.array(["c"])], dtype=object), "|")
    assert native.tolist() == [["a", "b"], [], ["c"]]


def test_duplicated_rows_keeps_the_first() -> None:
    a = np.array([1, 2, 1, 1, 2])
    b = np.array([5, 5, 5, 6, 5])
    assert col.duplicated_rows(a, b).tolist() == [False, False, True, False, True]


def test_id_maps_numeric_and_dense() -> None:
    numeric = build_id_map(pd.Series(["1", "296", "10"], dtype=col.STRING))
    assert numeric.kind == "numeric"
    assert numeric.to_int(["296", "1"]).tolist() == [296, 1]
    assert numeric.to_str([296]).tolist() == ["296"]
    # a leading zero, a sign or a letter makes every id of the kind dense (sorted order)
    for ids in (["1", "007"], ["1", "-2"], ["1", "b"]):
        assert build_id_map(pd.Series(ids)).kind == "dense", ids
    dense = build_id_map(pd.Series(["b", "a"]), pd.Series(["c", "a"]))
    assert dense.to_int(["a", "b", "c"]).tolist() == [1, 2, 3]
    assert dense.to_str([3, 1]).tolist() == ["c", "a"]
    with pytest.raises(DataError, match="not in the id map"):
        dense.to_int(["zz"])


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("items:\n  attributes:\n    price: money\n", "expected a type among"),
        ("items:\n  attributes:\n    price: {type: numeric, list: true}\n", "only categorical"),
        ("items:\n  columns: {sku: item_id}\n", "roles must be among"),
        ("interactions:\n  attributes: {x: numeric}\n", "only items and users"),
        ("itmes: {}\n", "unknown top-level key"),
        ("items:\n  file: ../items.csv\n", "a file name in the dataset folder"),
        ("items:\n  separator: '||'\n", "one character"),
        ("items: [\n", "is not valid YAML"),
    ],
)
def test_bad_schema_files_are_refused(tmp_path: Path, text: str, fragment: str) -> None:
    (tmp_path / "schema.yaml").write_text(text)
    with pytest.raises(DataError, match=r"schema\.yaml") as info:
        load_schema(tmp_path)
    assert fragment in str(info.value)


def test_json_schema_and_explicit_path(tmp_path: Path) -> None:
    (tmp_path / "s.json").write_text('{"items": {"attributes": {"tags": '
                                     '{"type": "categorical", "list": true}}}}')
    schema = load_schema(tmp_path, tmp_path / "s.json")
    attr = schema.table("items").attributes["tags"]
    assert (attr.type, attr.list) == ("categorical", True)
    assert load_schema(tmp_path).tables == {}  # no schema.yaml in the folder: defaults


def test_validate_reports_a_broken_schema_with_exit_code_1(tmp_path: Path, capsys) -> None:
    from hybridrec import cli

    (tmp_path / "interactions.csv").write_text("user_id,item_id,timestamp\nu,a,1\n")
    (tmp_path / "items.csv").write_text("item_id,title\na,A\n")
    (tmp_path / "schema.yaml").write_text("items:\n  attributes:\n    price: money\n")
    assert cli.main(["data", "validate", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "schema.yaml: items.attributes.price: expected a type among" in out
