"""Retrieval on the bookshop bundle with attributes as features (no HTTP, no Redis): an item
posted at run time with a catalogue item's attributes gets that item's text, BERT vector and
content-only tower vector; a request's user attributes change an anonymous user's query
vector and candidates."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from services.retrieval import fresh, pipeline
from services.retrieval.engine import RetrievalEngine
from services.retrieval.settings import RetrievalSettings
from shared.contracts import bundle_layout as L
from shared.contracts.bundle import load_bundle
from shared.contracts.internal_v1 import CandidatesRequest
from shared.contracts.public_v1 import NewItem
from shared.stores.fresh_items import FreshItemStore, decode_vector
from shared.stores.user_state import UserStateStore


@pytest.fixture(scope="module")
def engine(bookshop_bundle: tuple[Path, Path],
           tmp_path_factory: pytest.TempPathFactory) -> RetrievalEngine:
    root = bookshop_bundle[1]
    return RetrievalEngine(RetrievalSettings(artifacts=str(root), redis_url=None),
                           load_bundle(root), UserStateStore(None),
                           FreshItemStore(None, tmp_path_factory.mktemp("fresh")))


def test_a_run_time_copy_of_an_item_gets_its_vectors(engine: RetrievalEngine,
                                                     bookshop_bundle: tuple[Path, Path]) -> None:
    import pandas as pd

    data = bookshop_bundle[0]
    raw = pd.read_csv(data / "items.csv").set_index("sku")
    pos = 5
    item_id = str(engine.catalogue.item_ids[pos])
    attrs = {**engine.catalogue.attributes(pos), "description": raw.loc[item_id, "description"]}
    item = NewItem(item_id="copy-of-5", title=engine.catalogue.titles[pos], attributes=attrs)
    asyncio.run(fresh.add(engine, item))
    rec = engine.fresh.records["copy-of-5"]
    content = decode_vector(rec["content"])
    # the same text as the catalogue item's: title (year), genres from categories, description
    assert float(content @ engine.content_vectors[pos]) == pytest.approx(1.0, abs=1e-5)
    want = engine.candidate_tower(engine.encoder.encode_items(
        engine.content_vectors[[pos]], [pos], use_ids=False))[0]
    np.testing.assert_allclose(decode_vector(rec["vector"]), want, atol=1e-5)


def test_request_user_attributes_reach_the_query_tower(engine: RetrievalEngine) -> None:
    hist = [str(i) for i in engine.catalogue.item_ids[:3]]

    def ask(features: dict[str, object] | None) -> tuple[list[str], np.ndarray]:
        req = CandidatesRequest.model_validate(
            {"history": hist, "k": 20, **({"user_features": features} if features else {})})
        out = asyncio.run(pipeline.candidates(engine, req))
        pos = engine.catalogue.positions(hist)
        vec = engine.query_tower.encode(engine.encoder, [None], [pos], [features])[0]
        return list(out.columns.item_ids), vec

    plain_ids, plain = ask(None)
    fr_ids, fr = ask({"country": "FR", "age": 70})
    _, unknown = ask({"shoe_size": 44})  # an attribute the model does not know: ignored
    assert len(plain_ids) == len(fr_ids) == 20
    assert not np.allclose(plain, fr, atol=1e-4)
    np.testing.assert_allclose(unknown, plain, atol=1e-6)
    assert engine.bundle.manifest["files"][L.FEATURES]
