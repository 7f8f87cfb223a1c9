"""Two-tower retrieval model: retrieval task, model, training and export.

Kept apart as in TensorFlow Recommenders: the towers (:mod:`training.models.towers`),
the task (:class:`RetrievalTask`, in-batch sampled softmax with logQ correction)
and the model that ties them (:class:`TwoTowerModel`).

Training examples are next-item predictions whose query never sees its own target
(:mod:`training.models.two_tower_examples`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras

from shared.contracts.errors import ConfigError
from shared.model import features as F
from training.models.towers import TwoTowerConfig, build_towers, tower_inputs
from training.models.two_tower_examples import TrainingExamples

QUERY_TOWER_FILE = "query_tower.keras"
CANDIDATE_TOWER_FILE = "candidate_tower.keras"
ENCODER_FILE = "feature_encoder.json"
ITEM_VECTORS_FILE = "item_vectors.npy"
_EXTRA_KEYS = ("item_idx", "log_q")


class RetrievalTask:
    """In-batch sampled softmax with logQ correction.

    logits[i, j] = q_i . c_j / temperature - log Q(item_j); the positive of row i
    is column i. Other columns holding the same item as row i are masked out
    (accidental hits).
    """

    def __init__(
        self, temperature: float, logq_correction: bool = True, remove_accidental_hits: bool = True
    ) -> None:
        self.temperature = float(temperature)
        self.logq_correction = logq_correction
        self.remove_accidental_hits = remove_accidental_hits

    def __call__(
        self, query: Any, candidate: Any, log_q: Any, item_idx: Any, weight: Any = None
    ) -> tuple[Any, Any]:
        """Loss (weighted mean over the rows when ``weight`` [B] is given) and in-batch
        top-1 accuracy.

        Args:
            query: [B, d] query vectors.
            candidate: [B, d] vectors of the positive items.
            log_q: [B] log sampling probability of each positive item.
            item_idx: [B] item index of each positive item.

        Returns:
            ``(loss, accuracy)`` scalars.
        """
        import tensorflow as tf

        logits = tf.matmul(query, candidate, transpose_b=True) / self.temperature
        if self.logq_correction:
            logits -= tf.cast(log_q, logits.dtype)[None, :]
        size = tf.shape(logits)[0]
        eye = tf.eye(size, dtype=tf.bool)
        if self.remove_accidental_hits:
            same = tf.equal(item_idx[:, None], item_idx[None, :])
            logits = tf.where(tf.logical_and(same, ~eye), tf.constant(-1e9, logits.dtype), logits)
        labels = tf.range(size)
        per_row = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
        if weight is None:
            loss = tf.reduce_mean(per_row)
        else:
            w = tf.cast(weight, per_row.dtype)
            loss = tf.reduce_sum(per_row * w) / tf.maximum(tf.reduce_sum(w), 1e-9)
        correct = tf.equal(tf.argmax(logits, axis=1, output_type=tf.int32), labels)
        return loss, tf.reduce_mean(tf.cast(correct, tf.float32))


class TwoTowerModel(keras.Model):
    """Query tower + candidate tower trained with a :class:`RetrievalTask`.

    Only the towers are saved (each as its own ``.keras``); this wrapper is for training.
    """

    def __init__(
        self, query_tower: keras.Model, candidate_tower: keras.Model, task: RetrievalTask, **kw: Any
    ) -> None:
        super().__init__(**kw)
        self.query_tower = query_tower
        self.candidate_tower = candidate_tower
        self.task = task
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.accuracy_tracker = keras.metrics.Mean(name="batch_accuracy")

    @property
    def metrics(self) -> list[Any]:
        return [self.loss_tracker, self.accuracy_tracker]

    def call(self, inputs: dict[str, Any], training: bool = False) -> tuple[Any, Any]:
        q = self.query_tower(tower_inputs(self.query_tower, inputs), training=training)
        c = self.candidate_tower(tower_inputs(self.candidate_tower, inputs), training=training)
        return q, c

    def train_step(self, data: dict[str, Any]) -> dict[str, Any]:
        import tensorflow as tf

        if isinstance(data, tuple):  # (x, y, sample_weight) from train_on_batch
            data = data[0]
        with tf.GradientTape() as tape:
            q, c = self(data, training=True)
            loss, accuracy = self.task(
                q, c, data["log_q"], data["item_idx"], data.get("example_weight")
            )
        grads = tape.gradient(loss, self.trainable_variables)
        self.optimizer.apply_gradients(zip(grads, self.trainable_variables, strict=True))
        self.loss_tracker.update_state(loss)
        self.accuracy_tracker.update_state(accuracy)
        return {m.name: m.result() for m in self.metrics}


def _batch_histories(
    examples: TrainingExamples, rows: np.ndarray, config: TwoTowerConfig, rng: np.random.Generator
) -> np.ndarray:
    """[B, history_length] histories of a batch by ``config.history_mode`` (``auto`` = before)."""
    length = config.history_length
    if config.history_mode in ("before", "auto"):
        return examples.histories(rows, length)
    others = examples.other_items(rows, length, rng)
    if config.history_mode == "others":
        return others
    before = rng.random(len(rows)) < config.before_fraction
    return np.where(before[:, None], examples.histories(rows, length), others)


def make_dataset(
    examples: TrainingExamples,
    encoder: F.FeatureEncoder,
    content: np.ndarray,
    config: TwoTowerConfig,
) -> Any:
    """A ``tf.data`` pipeline of shuffled batches, reshuffled each epoch (seeded).

    Each batch is a flat dict: the query inputs, the candidate inputs (catalogue
    items with their ids), ``item_idx`` [B] int64 and ``log_q`` [B] float32.
    """
    import tensorflow as tf

    log_q = examples.log_q
    batch = config.batch_size
    epoch = {"n": 0}

    per_epoch = min(len(examples), config.max_examples_per_epoch or len(examples))

    def batches() -> Any:
        rng = np.random.default_rng(config.seed + epoch["n"])
        epoch["n"] += 1
        perm = rng.permutation(len(examples))[:per_epoch]
        for start in range(0, len(perm), batch):
            rows = perm[start : start + batch]
            items = examples.item_idx[rows]
            out = encoder.query_arrays(
                examples.user_table_index[rows], _batch_histories(examples, rows, config, rng)
            )
            out.update(encoder.encode_items(content[items], items))
            out["item_idx"] = items
            out["log_q"] = log_q[items]
            if examples.weight is not None:
                out["example_weight"] = examples.weight[rows]
            yield out

    sample = next(iter(batches()))
    epoch["n"] = 0
    signature = {
        k: tf.TensorSpec(shape=(None, *v.shape[1:]), dtype=tf.as_dtype(v.dtype), name=k)
        for k, v in sample.items()
    }
    n_batches = -(-per_epoch // batch)
    dataset = tf.data.Dataset.from_generator(batches, output_signature=signature)
    return dataset.apply(tf.data.experimental.assert_cardinality(n_batches)).prefetch(2)


def train_two_tower(
    encoder: F.FeatureEncoder,
    examples: TrainingExamples,
    content: np.ndarray,
    config: TwoTowerConfig,
    callbacks: list[Any] | None = None,
) -> tuple[keras.Model, keras.Model, dict[str, list[float]]]:
    """Build and train the towers.

    Args:
        encoder: Feature vocabularies.
        examples: Training examples (see :func:`build_training_examples`).
        content: [n_items, D] float32 content vectors in item_idx order.
        config: Hyperparameters (seeded).
        callbacks: Extra Keras callbacks (e.g. a validation-recall callback).

    Returns:
        ``(query_tower, candidate_tower, history)``; history maps metric names to
        per-epoch values.
    """
    if len(examples) == 0:
        raise ConfigError("no training interactions: the two-tower model needs at least one")
    if content.shape[0] != encoder.n_items:
        raise ConfigError(
            f"content vectors have {content.shape[0]} rows but the catalogue has "
            f"{encoder.n_items} items; embed the items in item_idx order"
        )
    keras.utils.set_random_seed(config.seed)
    query_tower, candidate_tower = build_towers(encoder, content.shape[1], config)
    model = TwoTowerModel(
        query_tower,
        candidate_tower,
        RetrievalTask(config.temperature, config.logq_correction, config.remove_accidental_hits),
    )
    if config.weight_decay > 0:
        optimizer: Any = keras.optimizers.AdamW(config.learning_rate, config.weight_decay)
    elif config.resolve_optimizer(encoder.n_users, encoder.n_items) == "lazy_adam":
        from training.models.lazy_adam import LazyAdam

        optimizer = LazyAdam(config.learning_rate)
    else:
        optimizer = keras.optimizers.Adam(config.learning_rate)
    model.compile(optimizer=optimizer)
    dataset = make_dataset(examples, encoder, np.asarray(content, np.float32), config)
    callbacks = list(callbacks or [])
    if config.progress:
        from training.models.progress import FitProgress

        steps = int(dataset.cardinality().numpy())
        callbacks.append(FitProgress("two-tower", config.epochs, steps))
    fit = model.fit(
        dataset, epochs=config.epochs, verbose=config.verbose, callbacks=callbacks, shuffle=False
    )
    history = {k: [float(v) for v in vals] for k, vals in fit.history.items()}
    return query_tower, candidate_tower, history


def compute_item_vectors(
    candidate_tower: keras.Model,
    encoder: F.FeatureEncoder,
    content: np.ndarray,
    use_ids: bool | np.ndarray = True,
    batch_size: int = 4096,
) -> np.ndarray:
    """[n_items, output_dim] float32 L2-normalised vectors of the whole catalogue.

    Args:
        candidate_tower: Trained candidate tower.
        encoder: Feature vocabularies.
        content: [n_items, D] content vectors.
        use_ids: [n_items] bool; False gives an item the content-only vector (use it
            for items without train interactions, whose id rows were never trained).
        batch_size: Prediction batch size.
    """
    inputs = encoder.encode_items(content, None, use_ids)
    vectors = candidate_tower.predict(
        tower_inputs(candidate_tower, inputs), batch_size=batch_size, verbose=0
    )
    return _normalise(np.asarray(vectors, dtype=np.float32))


def _normalise(x: np.ndarray) -> np.ndarray:
    return (x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)).astype(np.float32)


def save_two_tower(
    out_dir: str | Path,
    query_tower: keras.Model,
    candidate_tower: keras.Model,
    encoder: F.FeatureEncoder,
    item_vectors: np.ndarray,
) -> dict[str, str]:
    """Write the towers (``.keras``), the encoder (JSON) and the item vectors (``.npy``).

    Returns:
        File role -> path.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "query_tower": out / QUERY_TOWER_FILE,
        "candidate_tower": out / CANDIDATE_TOWER_FILE,
        "feature_encoder": out / ENCODER_FILE,
        "item_vectors": out / ITEM_VECTORS_FILE,
    }
    query_tower.save(paths["query_tower"])
    candidate_tower.save(paths["candidate_tower"])
    encoder.save(paths["feature_encoder"])
    np.save(paths["item_vectors"], np.asarray(item_vectors, np.float32), allow_pickle=False)
    return {k: str(v) for k, v in paths.items()}
