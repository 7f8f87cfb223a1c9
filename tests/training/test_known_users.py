"""Every user with training interactions is in the bundle's users: the models' users first,
then those with only low ratings or only hides/dislikes, with their seen and hidden items."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from training.catalogue_data import catalogue_eval_data, serving_interactions, temporal_holdout
from training.data.load import load_dataset
from training.known_users import all_pairs, bundle_users, user_item_csr


def test_low_raters_and_hiders_are_bundle_users_with_seen_and_hidden_items(
    tmp_path: Path,
) -> None:
    from tests.support.bookshop import write_bookshop

    ds = load_dataset(write_bookshop(tmp_path / "shop", n_items=40, n_users=20))
    users_map = ds.id_maps["users"]  # type: ignore[index]
    harsh = int(users_map.to_int(["cust-0005"])[0])
    only_hides = int(users_map.to_int(["cust-0020"])[0])  # the bookshop's last customer
    inter = ds.interactions
    ds.interactions = inter.assign(rating=np.where(inter["user_id"] == harsh, 1.0,
                                                   inter["rating"]).astype(np.float32))
    train, valid = temporal_holdout(serving_interactions(ds, 3.0), 0.1)
    edata = catalogue_eval_data(ds, train, valid, seed=1)
    assert harsh not in edata.user_ids and only_hides not in edata.user_ids

    users = bundle_users(ds, edata)
    ids = users["user_id"].to_numpy(np.int64)
    assert ids[: edata.n_users].tolist() == edata.user_ids.tolist()  # the models' rows first
    assert ids[edata.n_users :].tolist() == sorted([harsh, only_hides])
    assert list(users.columns) == list(edata.users.columns)

    indptr, seen = user_item_csr(all_pairs(ds), ids, edata.item_ids)
    row = int(np.flatnonzero(ids == harsh)[0])
    rated = np.sort(inter.loc[inter["user_id"] == harsh, "item_id"].unique())
    assert edata.item_ids[seen[indptr[row] : indptr[row + 1]]].tolist() == rated.tolist()
    assert ds.negatives is not None
    h_indptr, hidden = user_item_csr(ds.negatives, ids, edata.item_ids)
    assert h_indptr[-1] == len(ds.negatives) == len(hidden)
    row = int(np.flatnonzero(ids == only_hides)[0])
    mine = ds.negatives.loc[ds.negatives["user_id"] == only_hides, "item_id"]
    assert edata.item_ids[hidden[h_indptr[row] : h_indptr[row + 1]]].tolist() == sorted(mine)
    s_row = seen[indptr[row] : indptr[row + 1]]  # hidden items count as seen too
    assert set(edata.item_ids[s_row].tolist()) == set(mine.tolist())


def test_ml_latest_small_user_442_whose_every_rating_is_low_is_a_bundle_user(
    bundled_zip: Path,
) -> None:
    """User 442 rated 20 movies, none above 2.5: no positive at min_rating 3, so the models
    never see them (they used to get a 404); the bundle lists them with those 20 as seen."""
    ds = load_dataset(bundled_zip)
    mine = ds.interactions[ds.interactions["user_id"] == 442]
    assert len(mine) == 20 and mine["rating"].max() == 2.5
    train, valid = temporal_holdout(serving_interactions(ds, 3.0), 0.1)
    edata = catalogue_eval_data(ds, train, valid, seed=42)
    assert 442 not in edata.user_ids
    users = bundle_users(ds, edata)
    ids = users["user_id"].to_numpy(np.int64)
    assert len(users) == 610 and ids[-1] == 442  # every user of the release
    indptr, seen = user_item_csr(all_pairs(ds), ids, edata.item_ids)
    got = edata.item_ids[seen[indptr[-2] : indptr[-1]]]
    assert sorted(got.tolist()) == sorted(mine["item_id"].tolist())
