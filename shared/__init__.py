"""hybridrec's common package: what training and the services both need, split by role.

- :mod:`shared.contracts`: the interfaces between parts — public, internal and admin API
  schemas, the artifact bundle (layout, writer, reader) and the error hierarchy.
- :mod:`shared.model`: model numerics used by training and serving alike — feature
  encoding, Keras layers, candidate merging, item-kNN, the BERT text encoder, the
  catalogue, the numpy/Keras runners, and :mod:`shared.model.search` (one
  :class:`~shared.model.search.VectorIndex` protocol: exact, Annoy and HNSW search).
- :mod:`shared.serving`: web plumbing only the services use — app factory, middleware,
  readiness, hot reload, admin routes, settings, process tuning, HTTP clients.
- :mod:`shared.stores`: Redis-backed state (user vectors and history, events, fresh items).

``contracts`` and ``model`` never import FastAPI, uvicorn or ``serving`` (checked in CI by
``tests/test_architecture.py``). Nothing heavy happens at import time.
"""
