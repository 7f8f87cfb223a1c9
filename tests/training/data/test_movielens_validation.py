"""Every bad input raises a DataError that names the file, the line and the problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.contracts.errors import DataError
from training.data import load_dataset

HEAD = "userId,movieId,rating,timestamp\n"


def _error(path: Path, **kwargs: object) -> DataError:
    with pytest.raises(DataError) as info:
        load_dataset(path, **kwargs)  # type: ignore[arg-type]
    return info.value


@pytest.mark.parametrize(
    ("body", "line", "fragments"),
    [
        ("1,1,4.0,1\n1,2,7.0,2\n", 3, ["rating 7 is off the 0.5..5.0 scale"]),
        ("1,1,3.3,1\n", 2, ["rating 3.3 is off the 0.5..5.0 scale", "steps of 0.5"]),
        ("1,1,0.0,1\n1,2,0,2\n", 2, ["rating 0 is off", "2 rows have this problem"]),
        ("1,1,4.0,1\nabc,2,3.0,2\n", 3, ["column 'userId' has 'abc'", "expected an integer"]),
        ("1,1,4.0,1\n1,2,x,2\n", 3, ["column 'rating' has 'x'", "expected a number"]),
        ("1,1,4.0,1\n1,2,3.0,\n", 3, ["column 'timestamp' is empty"]),
        ("1,1,4.0,1\n1,2.5,3.0,2\n", 3, ["column 'movieId' has '2.5'", "expected an integer"]),
        ("1,1,4.0,1\n1,2,3.0,2,9\n", 3, ["expected 4 fields, found 5"]),
        ("1,1,4.0,1\n1,2,,2\n", 3, ["rating is empty"]),
        ("1,1,4.0,1\n1,99,3.0,2\n", 3, ["item id 99 is not in movies.csv", "unknown item"]),
    ],
)
def test_bad_ratings_csv_rows(csv_release, body: str, line: int, fragments: list[str]) -> None:
    err = _error(csv_release(ratings_csv=HEAD + body))
    message = str(err)
    assert "ratings.csv" in message and f"line {line}:" in message, message
    for fragment in fragments:
        assert fragment in message, message
    assert err.line == line and err.path is not None and err.path.endswith("ratings.csv")


def test_line_numbers_count_blank_lines_for_parse_errors(csv_release) -> None:
    err = _error(csv_release(ratings_csv=HEAD + "1,1,4.0,1\n\n1,2,oops,2\n"))
    assert err.line == 4 and "'oops'" in str(err)


def test_bad_row_inside_zip_names_member(csv_release, zipper, tmp_path: Path) -> None:
    folder = csv_release(name="src", ratings_csv=HEAD + "1,1,4.0,1\n1,1,9.5,2\n")
    archive = zipper(folder, tmp_path / "ml-latest-small.zip", top="ml-latest-small")
    message = str(_error(archive))
    assert f"{archive}:ml-latest-small/ratings.csv, line 3:" in message


def test_missing_required_column(csv_release) -> None:
    err = _error(csv_release(ratings_csv="userId,movieId,timestamp\n1,1,5\n"))
    assert "ratings.csv, line 1:" in str(err)
    assert "missing required column(s) ['rating']" in str(err)


def test_missing_movies_file(csv_release) -> None:
    err = _error(csv_release(movies_csv=None))
    assert "movies.csv" in str(err) and "missing file" in str(err)


def test_no_ratings_file(tmp_path: Path) -> None:
    (tmp_path / "movies.csv").write_text("movieId,title,genres\n")
    err = _error(tmp_path)
    assert "no MovieLens ratings file found" in str(err) and "movies.csv" in str(err)


def test_empty_ratings(csv_release) -> None:
    err = _error(csv_release(ratings_csv=HEAD))
    assert "ratings.csv" in str(err) and "has no ratings" in str(err)


def test_zero_byte_ratings_dat(ml1m_release) -> None:
    err = _error(ml1m_release(ratings_dat=""))
    assert "ratings.dat" in str(err) and "has no ratings" in str(err)


def test_duplicate_item_in_movies(csv_release) -> None:
    movies = "movieId,title,genres\n1,A (2000),Drama\n2,B (2001),Drama\n1,C (2002),Drama\n"
    err = _error(
        csv_release(
            movies_csv=movies, tags_csv=None, links_csv=None, ratings_csv=HEAD + "1,1,4.0,1\n"
        )
    )
    assert "movies.csv, line 4:" in str(err) and "item id 1 appears twice" in str(err)


def test_unparseable_links_value(csv_release) -> None:
    err = _error(csv_release(links_csv="movieId,imdbId,tmdbId\n1,0114709,862\n2,tt01,5\n"))
    assert "links.csv, line 3:" in str(err) and "column 'imdbId' has 'tt01'" in str(err)


def test_missing_path_and_bad_zip(tmp_path: Path) -> None:
    assert "no such file or folder" in str(_error(tmp_path / "nope.zip"))
    bad = tmp_path / "ml-1m.zip"
    bad.write_bytes(b"not a zip")
    err = _error(bad)
    assert str(bad) in str(err) and "valid .zip" in str(err)


def test_not_utf8(csv_release) -> None:
    folder = csv_release(name="bad-encoding")
    (folder / "movies.csv").write_bytes(
        "movieId,title,genres\n1,Am\xe9lie (2001),Comedy\n".encode("latin-1")
    )
    err = _error(folder)
    assert "movies.csv" in str(err) and "not valid utf-8" in str(err)


def test_min_rating_removing_everything(csv_release) -> None:
    err = _error(csv_release(), min_rating=5.5)
    assert "ratings.csv" in str(err) and "min_rating=5.5" in str(err)


@pytest.mark.parametrize(
    ("overrides", "fragments"),
    [
        (
            {"ratings_dat": "1::10::5::978300760\n1::20::6::978302109\n"},
            ["ratings.dat, line 2:", "rating 6 is off the 1..5.0 scale"],
        ),
        (
            {"ratings_dat": "1::10::4.5::978300760\n"},
            ["ratings.dat, line 1:", "rating 4.5 is off the 1..5.0 scale"],
        ),
        (
            {"ratings_dat": "1::10::5::978300760\n9::20::3::978302109\n"},
            ["ratings.dat, line 2:", "user id 9 is not in users.dat"],
        ),
        (
            {"ratings_dat": "1::10::5::978300760\n1::77::3::978302109\n"},
            ["ratings.dat, line 2:", "item id 77 is not in movies.dat"],
        ),
        (
            {"users_dat": "1::F::1::10::48067\n2::M::56::42::70072\n"},
            ["users.dat, line 2:", "occupation code 42"],
        ),
        (
            {"movies_dat": "10::Toy Story (1995)::Animation\nxx::Heat (1995)::Action\n"},
            ["movies.dat, line 2:", "column 'item_id' has 'xx'"],
        ),
        ({"users_dat": None}, ["users.dat", "missing file"]),
    ],
)
def test_ml1m_errors(ml1m_release, overrides: dict[str, str | None], fragments: list[str]) -> None:
    message = str(_error(ml1m_release(**overrides)))
    for fragment in fragments:
        assert fragment in message, message


@pytest.mark.parametrize(
    ("overrides", "fragments"),
    [
        (
            {"u_data": "196\t1\t3\t881250949\n186\t2\t0\t891717742\n"},
            ["u.data, line 2:", "rating 0 is off the 1..5.0 scale"],
        ),
        (
            {"u_data": "196\t1\t3\t881250949\n186\t2\t3\n"},
            ["u.data, line 2:", "column 'timestamp' is empty"],
        ),
        (
            {"u_data": "196\t1\t3\t881250949\n186\t5\t3\t891717742\n"},
            ["u.data, line 2:", "item id 5 is not in u.item"],
        ),
        (
            {"u_user": "22|25|M|writer|40206\n186|old|F|executive|00000\n"},
            ["u.user, line 2:", "column 'age' has 'old'"],
        ),
    ],
)
def test_ml100k_errors(
    ml100k_release, overrides: dict[str, str | None], fragments: list[str]
) -> None:
    message = str(_error(ml100k_release(**overrides)))
    for fragment in fragments:
        assert fragment in message, message
