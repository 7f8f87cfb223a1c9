"""The retrieval stage's candidate sources as :class:`~training.evaluation.base.Recommender` s.

* :class:`TwoTowerRecommender` – the two-tower model; score = dot(user vector,
  item vector). User vectors of known users come from the query tower fed with
  the user id, the last ``history_length`` train items and the user features,
  exactly as the retrieval service computes them.
* :class:`ItemKNNRecommender` – item-to-item neighbours (:mod:`shared.model.item_knn`);
  score = summed neighbour weights of the user's train items.

The harness evaluates them; the ranker uses them as candidate generators
(:meth:`candidates`).
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras

from shared.contracts.errors import ConfigError, NotReadyError
from shared.model.features import FeatureEncoder
from shared.model.item_knn import build_item_knn, knn_matrix
from training.evaluation.base import EvalData
from training.models.towers import TwoTowerConfig, tower_inputs


class ValidationRecall(keras.callbacks.Callback):
    """Recall@k on the validation split after every epoch; restores the best epoch at the end.

    Args:
        query_inputs: Query-tower inputs of the sampled validation users.
        item_inputs: Candidate-tower inputs of the whole catalogue.
        relevant: [U, n_items] CSR validation items of those users.
        seen: [U, n_items] CSR train items of those users (masked out).
        k: Cut-off.
        restore_best: Put back the weights of the best epoch when training ends.
    """

    def __init__(
        self,
        query_inputs: dict[str, np.ndarray],
        item_inputs: dict[str, np.ndarray],
        relevant: sp.csr_matrix,
        seen: sp.csr_matrix,
        k: int = 10,
        restore_best: bool = True,
    ) -> None:
        super().__init__()
        self.query_inputs, self.item_inputs = query_inputs, item_inputs
        self.relevant, self.seen, self.k = relevant, seen, k
        self.restore_best = restore_best
        self.best: tuple[float, int, list[Any] | None] = (-1.0, -1, None)
        self.history: list[float] = []

    def _recall(self) -> float:
        tt: Any = self.model
        q = tt.query_tower.predict(tower_inputs(tt.query_tower, self.query_inputs), verbose=0)
        c = tt.candidate_tower.predict(
            tower_inputs(tt.candidate_tower, self.item_inputs), batch_size=4096, verbose=0
        )
        k = min(self.k, c.shape[0])
        recalls = []
        for lo in range(0, len(q), 256):  # bounded memory: 256 x n_items scores at a time
            rel = self.relevant[lo : lo + 256]
            top = _top_candidates(q[lo : lo + 256] @ c.T, k, self.seen[lo : lo + 256])
            hits = np.take_along_axis(rel.toarray() > 0, top, axis=1).sum(axis=1)
            recalls.append(hits / np.maximum(np.diff(rel.indptr), 1))
        return float(np.mean(np.concatenate(recalls)))

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        recall = self._recall()
        self.history.append(recall)
        if logs is not None:
            logs[f"val_recall@{self.k}"] = recall
        if recall > self.best[0]:
            weights = self.model.get_weights() if self.restore_best else None
            self.best = (recall, epoch, weights)

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        if self.restore_best and self.best[2] is not None:
            self.model.set_weights(self.best[2])


def _top_candidates(scores: np.ndarray, k: int, seen: sp.csr_matrix | None) -> np.ndarray:
    """[B, k] int64 best item indices per row, seen items excluded, best first."""
    scores = np.array(scores, dtype=np.float32, copy=True)
    if seen is not None and seen.nnz:
        rows = np.repeat(np.arange(seen.shape[0]), np.diff(seen.indptr))
        scores[rows, seen.indices] = -np.inf
    k = min(int(k), scores.shape[1])
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1).astype(np.int64)


class _CandidateSource:
    """Shared ``candidates`` helper; subclasses implement ``score`` and keep ``_train``."""

    _train: sp.csr_matrix | None = None

    def score(self, user_idx: np.ndarray) -> np.ndarray:  # pragma: no cover - overridden
        raise NotImplementedError

    def candidates(
        self, user_idx: np.ndarray, k: int = 100, exclude_seen: bool = True
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` candidates per user (for the ranker).

        Args:
            user_idx: [B] user positions.
            k: Candidates per user.
            exclude_seen: Leave out the users' train items.

        Returns:
            ``(idx [B, k] int64, score [B, k] float32)``, best first.
        """
        user_idx = np.asarray(user_idx, dtype=np.int64)
        scores = self.score(user_idx)
        seen = self._train[user_idx] if exclude_seen and self._train is not None else None
        top = _top_candidates(scores, k, seen)
        return top, np.take_along_axis(scores, top, axis=1).astype(np.float32)


class TwoTowerRecommender(_CandidateSource):
    """Two-tower retrieval model behind the Recommender protocol.

    Args:
        config: Hyperparameters (None = defaults).
        content_vectors: [n_items, D] content (BERT) vectors aligned to ``data.items``.
        name: Report name.
    """

    def __init__(
        self,
        config: TwoTowerConfig | None = None,
        content_vectors: np.ndarray | None = None,
        name: str = "TwoTower",
    ) -> None:
        if content_vectors is None:
            raise ConfigError(
                "TwoTowerRecommender needs content_vectors [n_items, D] aligned to data.items; "
                "compute them with training.embeddings.embed_items"
            )
        self.name = name
        self.config = config or TwoTowerConfig()
        self.content = np.asarray(content_vectors, dtype=np.float32)
        self.hyperparameters: dict[str, Any] = self.config.to_dict()
        self.encoder: FeatureEncoder | None = None
        self.query_tower: Any = None
        self.candidate_tower: Any = None
        self.item_vectors = np.zeros((0, self.config.output_dim), dtype=np.float32)
        self.user_vectors = np.zeros((0, self.config.output_dim), dtype=np.float32)
        self.histories: list[np.ndarray] = []
        self.training_seconds = 0.0

    def fit(self, data: EvalData) -> None:
        """Train on ``data.train_interactions``; pick the epoch on ``data.valid`` if configured."""
        from training.attribute_features import fit_attribute_encoder
        from training.models.confidence import pair_confidence
        from training.models.two_tower import compute_item_vectors, train_two_tower
        from training.models.two_tower_examples import build_training_examples, last_items

        cfg = replace(self.config, history_mode=self.config.resolve_history_mode(data.split),
                      optimizer=self.config.resolve_optimizer(data.n_users, data.n_items))
        if len(self.content) != data.n_items:
            raise ConfigError(
                f"content_vectors have {len(self.content)} rows but the split has "
                f"{data.n_items} items; embed data.items (aligned to item_idx)"
            )
        start = time.perf_counter()
        self._train = sp.csr_matrix(data.train)
        inter = data.train_interactions
        u = inter["user_idx"].to_numpy(np.int64)
        i = inter["item_idx"].to_numpy(np.int64)
        t = inter["timestamp"].to_numpy(np.int64)
        self.encoder = FeatureEncoder.fit(
            data.user_ids, data.items, data.users, history_length=cfg.history_length,
            attributes=fit_attribute_encoder(data),
            attribute_sources={k: v for k in ("genres", "year") if (
                v := (getattr(data, "attribute_types", None) or {}).get(f"{k}_from"))},
        )
        # Each example's loss weighs its pair's relative confidence (models/confidence.py).
        examples = build_training_examples(u, i, t, data.n_items, pair_confidence(inter))
        self.histories = last_items(u, i, t, data.n_users, cfg.history_length)
        has_id = examples.item_counts > 0
        callbacks = []
        valid_cb = None
        if cfg.select_epoch_on_valid and data.valid.nnz:
            users = np.flatnonzero(np.diff(data.valid.indptr) > 0)
            if len(users) > cfg.valid_max_users:
                rng = np.random.default_rng(cfg.seed)
                users = np.sort(rng.choice(users, cfg.valid_max_users, replace=False))
            valid_cb = ValidationRecall(
                self._query_inputs(users),
                self.encoder.encode_items(self.content, None, has_id),
                sp.csr_matrix(data.valid[users]),
                sp.csr_matrix(data.train[users]),
                k=cfg.valid_k,
            )
            callbacks.append(valid_cb)
        self.query_tower, self.candidate_tower, history = train_two_tower(
            self.encoder, examples, self.content, cfg, callbacks
        )
        self.item_vectors = compute_item_vectors(
            self.candidate_tower, self.encoder, self.content, has_id
        )
        self.user_vectors = self.compute_user_vectors(np.arange(data.n_users))
        self.training_seconds = time.perf_counter() - start
        self.hyperparameters = {
            **cfg.to_dict(),
            "history_mode_requested": self.config.history_mode,
            "loss_history": history.get("loss", []),
            "training_seconds": round(self.training_seconds, 2),
        }
        if valid_cb is not None:
            self.hyperparameters["best_epoch"] = int(valid_cb.best[1]) + 1
            self.hyperparameters[f"valid_recall@{cfg.valid_k}"] = valid_cb.history
        if cfg.verbose:
            print(f"{self.name}: trained in {self.training_seconds:.1f}s", file=sys.stderr)

    def _query_inputs(self, user_idx: np.ndarray) -> dict[str, np.ndarray]:
        if self.encoder is None:
            raise NotReadyError(f"{self.name} is not fitted; call fit(data) first")
        hist = self.encoder.pad_histories([self.histories[u] for u in user_idx])
        return self.encoder.query_arrays(np.asarray(user_idx) + 1, hist)

    def compute_user_vectors(self, user_idx: np.ndarray) -> np.ndarray:
        """[B, output_dim] query-tower vectors of known users (id + last train items + features)."""
        if self.query_tower is None:
            raise NotReadyError(f"{self.name} is not fitted; call fit(data) first")
        inputs = tower_inputs(self.query_tower, self._query_inputs(np.asarray(user_idx)))
        return np.asarray(self.query_tower.predict(inputs, batch_size=4096, verbose=0), np.float32)

    def score(self, user_idx: np.ndarray) -> np.ndarray:
        """[B, n_items] float32 dot products of user and item vectors."""
        if not len(self.user_vectors):
            raise NotReadyError(f"{self.name} is not fitted; call fit(data) first")
        return self.user_vectors[np.asarray(user_idx, dtype=np.int64)] @ self.item_vectors.T

    def export(self, out_dir: str | Path) -> dict[str, str]:
        """Save towers, encoder and item vectors (see :func:`save_two_tower`)."""
        from training.models.two_tower import save_two_tower

        if self.encoder is None:
            raise NotReadyError(f"{self.name} is not fitted; call fit(data) first")
        return save_two_tower(
            out_dir, self.query_tower, self.candidate_tower, self.encoder, self.item_vectors
        )


class ItemKNNRecommender(_CandidateSource):
    """Item-to-item neighbours (:func:`shared.model.item_knn.build_item_knn`) as a Recommender.

    Args:
        k: Entries kept per item.
        shrink: Cosine shrinkage.
        candidate_k: Neighbours per candidate before inversion (see ``build_item_knn``).
        name: Report name.
    """

    def __init__(
        self,
        k: int = 100,
        shrink: float = 10.0,
        candidate_k: int | None = 50,
        name: str = "ItemKNN-retrieval",
    ) -> None:
        self.name = name
        self.k = int(k)
        self.shrink = float(shrink)
        self.candidate_k = candidate_k
        self.hyperparameters: dict[str, Any] = {
            "k": self.k, "shrink": self.shrink, "candidate_k": candidate_k
        }
        self.neighbors = np.zeros((0, self.k), dtype=np.int32)
        self.weights = np.zeros((0, self.k), dtype=np.float32)
        self._sim = sp.csr_matrix((0, 0), dtype=np.float32)

    def fit(self, data: EvalData) -> None:
        """Build the neighbour table from ``data.train``."""
        from training.models.confidence import pair_confidence, weighted_train

        self._train = sp.csr_matrix(data.train, dtype=np.float32)
        # Similarities from the pairs' relative confidence when they have one
        # (models/confidence.py); scores still sum neighbour weights over the history.
        weighted = pair_confidence(data.train_interactions) is not None
        self.neighbors, self.weights = build_item_knn(
            weighted_train(data) if weighted else self._train, k=self.k, shrink=self.shrink,
            candidate_k=self.candidate_k, binary=not weighted, progress=True,
        )
        self._sim = knn_matrix(self.neighbors, self.weights, data.n_items)

    def score(self, user_idx: np.ndarray) -> np.ndarray:
        """[B, n_items] float32 summed neighbour weights of each user's train items."""
        if self._train is None:
            raise NotReadyError(f"{self.name} is not fitted; call fit(data) first")
        rows = self._train[np.asarray(user_idx, dtype=np.int64)]
        return np.asarray((rows @ self._sim).toarray(), dtype=np.float32)

    def save(self, out_dir: str | Path) -> dict[str, str]:
        """Write ``neighbors`` and ``weights`` as ``.npy`` (no pickle)."""
        from shared.model.item_knn import NEIGHBORS_FILE, WEIGHTS_FILE

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        np.save(out / NEIGHBORS_FILE, self.neighbors, allow_pickle=False)
        np.save(out / WEIGHTS_FILE, self.weights, allow_pickle=False)
        return {"neighbors": str(out / NEIGHBORS_FILE), "weights": str(out / WEIGHTS_FILE)}
