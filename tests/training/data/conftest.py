"""Small MovieLens releases written in each release's exact on-disk format.

``bundled_zip`` (the real data/ml-latest-small.zip) comes from tests/conftest.py.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

CSV_FILES = {
    "ratings.csv": (
        "userId,movieId,rating,timestamp\n"
        "1,1,4.0,964982703\n"
        "1,2,3.5,964981247\n"
        "2,1,5.0,964982224\n"
        "2,3,0.5,964983815\n"
        "3,2,2.0,964982931\n"
    ),
    "movies.csv": (
        "movieId,title,genres\n"
        "1,Toy Story (1995),Adventure|Animation|Children\n"
        '2,"American President, The (1995)",Comedy|Drama|Romance\n'
        "3,Babylon 5,(no genres listed)\n"
        "4,Fawlty Towers (1975-1979),Comedy\n"
    ),
    "tags.csv": (
        "userId,movieId,tag,timestamp\n"
        "1,1,Pixar,1\n"
        "2,1, pixar ,2\n"
        "3,1,fun,3\n"
        "1,1,animation,4\n"
        '2,2,"politics, satire",5\n'
    ),
    "links.csv": (
        "movieId,imdbId,tmdbId\n1,0114709,862\n2,0112346,9087\n3,0105946,\n4,0072500,2207\n"
    ),
}

ML1M_FILES = {
    "ratings.dat": "1::10::5::978300760\n1::20::3::978302109\n2::10::4::978301968\n"
    "2::30::1::978300275\n",
    "movies.dat": "10::Toy Story (1995)::Animation|Children's|Comedy\n"
    "20::Amélie (Fabuleux destin d'Amélie Poulain, Le) (2001)::Comedy|Romance\n"
    "30::Heat (1995)::Action|Crime|Thriller\n",
    "users.dat": "1::F::1::10::48067\n2::M::56::16::70072\n3::M::25::15::55117\n",
}

_FLAGS_TOY = "0|0|0|1|1|1|0|0|0|0|0|0|0|0|0|0|0|0|0"
_FLAGS_UNKNOWN = "1|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0"
_FLAGS_DRAMA = "0|0|0|0|0|0|0|0|1|0|0|0|0|0|0|0|0|0|0"
ML100K_FILES = {
    "u.data": "196\t1\t3\t881250949\n186\t2\t3\t891717742\n196\t3\t1\t878887116\n"
    "22\t1\t5\t881171488\n",
    "u.item": f"1|Toy Story (1995)|01-Jan-1995||http://us.imdb.com/M/title-exact?Toy|{_FLAGS_TOY}\n"
    f"2|unknown||||{_FLAGS_UNKNOWN}\n"
    f"3|Café au lait|01-Jan-1994||http://us.imdb.com/M/x|{_FLAGS_DRAMA}\n",
    "u.user": "22|25|M|writer|40206\n186|39|F|executive|00000\n196|49|M|writer|55105\n",
    "u.genre": "unknown|0\nAction|1\nAdventure|2\nAnimation|3\nChildren's|4\nComedy|5\n"
    "Crime|6\nDocumentary|7\nDrama|8\nFantasy|9\nFilm-Noir|10\nHorror|11\n"
    "Musical|12\nMystery|13\nRomance|14\nSci-Fi|15\nThriller|16\nWar|17\n"
    "Western|18\n\n",
}

Writer = Callable[..., Path]


def _write(
    folder: Path, files: dict[str, str], overrides: dict[str, str | None], encoding: str
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in {**files, **overrides}.items():
        if text is not None:
            (folder / name).write_bytes(text.encode(encoding))
    return folder


@pytest.fixture
def csv_release(tmp_path: Path) -> Writer:
    """Write an ml-latest-small style folder; keyword overrides replace (None drops) files."""

    def make(name: str = "ml-latest-small", **overrides: str | None) -> Path:
        fixed = {k.replace("_", "."): v for k, v in overrides.items()}
        return _write(tmp_path / name, CSV_FILES, fixed, "utf-8")

    return make


@pytest.fixture
def ml1m_release(tmp_path: Path) -> Writer:
    """Write an ml-1m style folder of ``::``-separated Latin-1 ``.dat`` files."""

    def make(name: str = "ml-1m", **overrides: str | None) -> Path:
        fixed = {k.replace("_", "."): v for k, v in overrides.items()}
        return _write(tmp_path / name, ML1M_FILES, fixed, "latin-1")

    return make


@pytest.fixture
def ml100k_release(tmp_path: Path) -> Writer:
    """Write an ml-100k style folder (``u.data``, ``u.item``, ``u.user``, ``u.genre``)."""

    def make(name: str = "ml-100k", **overrides: str | None) -> Path:
        fixed = {k.replace("u_", "u."): v for k, v in overrides.items()}
        return _write(tmp_path / name, ML100K_FILES, fixed, "latin-1")

    return make


def zip_folder(folder: Path, zip_path: Path, *, top: str | None) -> Path:
    """Zip ``folder``'s files, under one top-level folder ``top`` (or at the root)."""
    with zipfile.ZipFile(zip_path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        if top:
            zf.writestr(f"{top}/", "")
        for path in sorted(folder.iterdir()):
            zf.write(path, f"{top}/{path.name}" if top else path.name)
    return zip_path


@pytest.fixture
def zipper() -> Callable[..., Path]:
    """The :func:`zip_folder` helper."""
    return zip_folder
