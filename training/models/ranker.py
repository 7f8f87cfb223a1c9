"""The hybrid ranking network, its task (loss + metrics) and its training loop.

Model (:func:`build_ranker`, Keras 3 functional, standard layers only so it
loads with ``safe_mode=True``): NeuMF-style GMF (``u ⊙ i``) and MLP branches
over user/item ID embeddings; the MLP also sees the candidate's content vector
(projected), its genres, user features and the normalised dense features
(retrieval scores and log-ranks, content similarity to the history,
popularity, recency). The head reads the GMF vector, the MLP output and the
normalised dense features (a wide path) and outputs one logit per candidate.
``ensemble`` independently initialised copies of this network live in one
model (output [b, E]); each is trained on its own logit and the score is their
mean, which steadies the ranker on small data.

Task (:class:`RankingTask`): pointwise BCE or listwise softmax cross-entropy
over each user's candidate list; metric NDCG@10 of the re-ordered list.

Training (:func:`train_ranker`): lists of candidates per user
(:class:`RankingLists`), batches of whole lists, Adam, early stopping on a
validation NDCG@10 with the best weights restored.
"""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from tqdm import tqdm

from shared.contracts.errors import ConfigError
from training.models.ranking_lists import RankingLists, gather_rows

LOSSES = ("listwise", "bce", "hybrid")


@dataclass
class RankerConfig:
    """Hyperparameters of the ranking network and its training.

    Attributes:
        id_dim: Width of each ID embedding (GMF and MLP tables each).
        attribute_dim: Width of each categorical attribute's embedding.
        use_ids: Use the user/item ID embeddings (GMF branch and MLP inputs).
            Off by default (the inner labels the IDs memorise are train items at
            evaluation time, hence never candidates); ``hybridrec evaluate``
            chooses it on validation (docs/evaluation.md).
        content_dim: Width the content vector is projected to.
        hidden_units: MLP layer sizes.
        dropout: Dropout after each MLP layer.
        l2: L2 penalty on the ID embeddings.
        loss: ``listwise``, ``bce``, ``hybrid`` (their sum) or ``auto`` (train
            listwise and bce, keep the better on validation NDCG@10). Default
            ``hybrid``: on ml-latest-small it matched or beat the better of the two
            on validation NDCG@10 at the cost of one training run.
        epochs: Maximum epochs.
        patience: Epochs without validation improvement before stopping.
        lists_per_batch: User lists per gradient step.
        ensemble: Independently initialised copies of the network inside one model,
            each trained with the loss on its own logit; the score is their mean.
        learning_rate: Adam learning rate.
        seed: Seed of initialisation, dropout and shuffling.
        progress: Show a tqdm bar on stderr.
    """

    id_dim: int = 16
    attribute_dim: int = 8
    use_ids: bool = False
    content_dim: int = 32
    hidden_units: tuple[int, ...] = (128, 64)
    dropout: float = 0.1
    l2: float = 1e-5
    loss: str = "hybrid"
    epochs: int = 30
    patience: int = 4
    lists_per_batch: int = 16
    ensemble: int = 3
    learning_rate: float = 1e-3
    seed: int = 42
    progress: bool = True

    def __post_init__(self) -> None:
        self.hidden_units = tuple(int(u) for u in self.hidden_units)
        if self.loss not in (*LOSSES, "auto"):
            raise ConfigError(f"loss must be one of {[*LOSSES, 'auto']}, got {self.loss!r}")
        for name in ("id_dim", "attribute_dim", "content_dim", "epochs", "lists_per_batch",
                     "ensemble"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready hyperparameters."""
        d = asdict(self)
        d["hidden_units"] = list(self.hidden_units)
        return d


def ndcg_at_k(order_labels: np.ndarray, n_relevant: np.ndarray, k: int = 10) -> np.ndarray:
    """Binary NDCG@k per row of ranked labels (harness definition).

    Args:
        order_labels: [b, n] 0/1 labels in ranked order.
        n_relevant: [b] relevant items per user (ideal DCG uses min(n, k)).
        k: Cut-off.

    Returns:
        [b] float64.
    """
    kk = min(k, order_labels.shape[1])
    disc = 1.0 / np.log2(np.arange(2, k + 2, dtype=np.float64))
    dcg = order_labels[:, :kk].astype(np.float64) @ disc[:kk]
    ideal = np.cumsum(disc)[np.clip(n_relevant, 1, k) - 1]
    return np.where(n_relevant > 0, dcg / ideal, 0.0)


def list_ndcg(lists: RankingLists, scores: np.ndarray | None = None, k: int = 10) -> float:
    """Mean NDCG@k over lists, ranked by ``scores`` [R] (None = retrieval order)."""
    if not len(lists):
        return 0.0
    rows, mask = lists.padded_rows(np.arange(len(lists)))
    lab = np.where(mask, lists.labels[rows], 0.0)
    if scores is not None:
        s = np.where(mask, scores[rows], -np.inf)
        order = np.argsort(-s, axis=1, kind="stable")
        lab = np.take_along_axis(lab, order, axis=1)
    return float(ndcg_at_k(lab, lists.n_relevant, k).mean())


class RankingTask:
    """Loss and metric of the ranker.

    Args:
        loss: ``listwise`` (softmax cross-entropy of each list against its
            normalised labels; lists without positives are skipped) or ``bce``
            (sigmoid cross-entropy per candidate) or ``hybrid`` (their sum).
    """

    def __init__(self, loss: str = "listwise") -> None:
        if loss not in LOSSES:
            raise ConfigError(f"loss must be one of {list(LOSSES)}, got {loss!r}")
        self.loss_name = loss

    def loss(self, logits: Any, labels: Any, mask: Any) -> Any:
        """Scalar loss.

        Args:
            logits: [b, n] float32 tensor.
            labels: [b, n] float32 0/1.
            mask: [b, n] bool, False on padding.

        Returns:
            Scalar tensor.
        """
        import tensorflow as tf

        maskf = tf.cast(mask, tf.float32)
        per = tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits)
        bce = tf.reduce_sum(per * maskf) / tf.maximum(tf.reduce_sum(maskf), 1.0)
        if self.loss_name == "bce":
            return bce
        masked = tf.where(mask, logits, tf.fill(tf.shape(logits), -1e9))
        pos = labels * maskf
        n_pos = tf.reduce_sum(pos, axis=1)
        target = pos / tf.maximum(n_pos[:, None], 1.0)
        per_list = -tf.reduce_sum(target * tf.nn.log_softmax(masked, axis=1), axis=1)
        has = tf.cast(n_pos > 0, tf.float32)
        listwise = tf.reduce_sum(per_list * has) / tf.maximum(tf.reduce_sum(has), 1.0)
        return listwise + bce if self.loss_name == "hybrid" else listwise

    @staticmethod
    def metric(lists: RankingLists, scores: np.ndarray) -> float:
        """NDCG@10 of the lists re-ordered by ``scores``."""
        return list_ndcg(lists, scores, 10)


def build_ranker(
    input_shapes: dict[str, int],
    n_users: int,
    n_items: int,
    dense_mean: np.ndarray,
    dense_var: np.ndarray,
    config: RankerConfig,
    attributes: Any = None,
) -> Any:
    """The ranking network.

    Args:
        input_shapes: Input name -> width (0 for the scalar ``user_idx``/``item_idx``),
            from :meth:`shared.model.ranker_features.RankerFeatureTables.input_shapes`.
        n_users: Rows of the user ID tables.
        n_items: Rows of the item ID tables.
        dense_mean: [F] training mean of the dense features.
        dense_var: [F] training variance of the dense features.
        config: Hyperparameters.
        attributes: The tables' :class:`shared.model.attributes.AttributeEncoder` (or None):
            each member embeds and mean-pools the item and user categorical attributes and
            reads the numeric ones (:func:`training.models.towers.attribute_parts`).

    Returns:
        A ``keras.Model`` mapping the input dict to [b, E] logits (E = ``config.ensemble``
        independently initialised members; the score is their mean).
    """
    import keras
    from keras import layers

    keras.utils.set_random_seed(config.seed)
    inputs = {
        name: keras.Input(shape=() if width == 0 else (width,), name=name,
                          dtype="int32" if width == 0 else "float32")
        for name, width in input_shapes.items()
    }
    reg = keras.regularizers.L2(config.l2) if config.l2 > 0 else None
    dense = layers.Normalization(mean=dense_mean, variance=np.maximum(dense_var, 1e-6),
                                 name="dense_norm")(inputs["dense"])

    def member(sfx: str, seed: int) -> Any:
        mlp_parts = [
            layers.Dense(config.content_dim, name=f"content_proj{sfx}")(inputs["content"]),
            inputs["genres"], dense,
        ]
        if "user_features" in inputs:
            mlp_parts.append(inputs["user_features"])
        if attributes is not None:
            from training.models.towers import attribute_parts

            for side in (attributes.item, attributes.user):
                mlp_parts += attribute_parts(side, config.attribute_dim, inputs, sfx)
        head_parts = [dense]
        if config.use_ids:
            def emb(n: int, name: str, src: str) -> Any:
                return layers.Embedding(n, config.id_dim, embeddings_regularizer=reg,
                                        name=f"{name}{sfx}")(inputs[src])

            gmf = layers.Multiply(name=f"gmf{sfx}")([emb(n_users, "user_gmf", "user_idx"),
                                                     emb(n_items, "item_gmf", "item_idx")])
            mlp_parts = [emb(n_users, "user_mlp", "user_idx"),
                         emb(n_items, "item_mlp", "item_idx"), *mlp_parts]
            head_parts.append(gmf)
        x = layers.Concatenate(name=f"mlp_in{sfx}")(mlp_parts)
        for j, units in enumerate(config.hidden_units):
            x = layers.Dense(units, activation="relu", name=f"mlp_{j}{sfx}")(x)
            if config.dropout > 0:
                x = layers.Dropout(config.dropout, seed=seed + j, name=f"dropout_{j}{sfx}")(x)
        head_parts.append(x)
        return layers.Dense(1, name=f"logit{sfx}")(
            layers.Concatenate(name=f"head_in{sfx}")(head_parts))

    if config.ensemble == 1:
        out = member("", config.seed)
    else:
        out = layers.Concatenate(name="ensemble")(
            [member(f"_e{k}", config.seed + 100 * k) for k in range(config.ensemble)])
    return keras.Model(inputs=inputs, outputs=out, name="hybrid_ranker")


def predict_logits(model: Any, features: dict[str, np.ndarray], batch: int = 8192, *,
                   item_lookups: dict[str, np.ndarray] | None = None) -> np.ndarray:
    """[R] float32 scores (mean of the ensemble's logits), batched eager calls.

    ``item_lookups`` (:attr:`RankingLists.item_lookups`) supply the per-item inputs
    missing from ``features``, gathered by ``item_idx`` batch by batch."""
    lookups = item_lookups or {}
    names = ([t.name for t in model.inputs] if isinstance(model.inputs, list)
             else [*features, *lookups])
    n = len(features["item_idx"])
    out = np.zeros(n, dtype=np.float32)
    for lo in range(0, n, batch):
        part = gather_rows(features, lookups, names, lo, lo + batch)
        res = np.asarray(model(part, training=False))
        out[lo:lo + batch] = res.reshape(len(res), -1).mean(axis=1)
    return out


def train_ranker(
    model: Any,
    task: RankingTask,
    train: RankingLists,
    valid: RankingLists,
    config: RankerConfig,
) -> dict[str, Any]:
    """Fit ``model`` on whole candidate lists; keep the epoch with the best validation NDCG@10.

    Args:
        model: From :func:`build_ranker`.
        task: Loss and metric.
        train: Training lists (labels from the inner holdout).
        valid: Validation lists for early stopping.
        config: Epochs, batch size, learning rate, patience, seed.

    Returns:
        ``{"loss": [...], "valid_ndcg@10": [...], "best_epoch": int,
        "best_valid_ndcg@10": float}``; the model holds the best weights.
    """
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    opt = keras.optimizers.Adam(config.learning_rate)
    names = [t.name for t in model.inputs]
    table = {k: tf.constant(train.features[k]) for k in names if k not in train.item_lookups}
    lookups = {k: tf.constant(train.item_lookups[k]) for k in names if k in train.item_lookups}
    row_items = tf.constant(train.features["item_idx"]) if lookups else None
    all_labels = tf.constant(train.labels.astype(np.float32))
    width = int(np.diff(train.offsets).max(initial=1))
    n_members = int(model.outputs[0].shape[-1])

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int64),
                                  tf.TensorSpec([None, None], tf.bool)], autograph=False)
    def step(rows: Any, mask: Any) -> Any:
        flat = tf.reshape(rows, [-1])
        feats = {k: tf.gather(v, flat) for k, v in table.items()}
        if lookups:
            items = tf.gather(row_items, flat)
            feats.update({k: tf.gather(v, items) for k, v in lookups.items()})
        labels = tf.where(mask, tf.gather(all_labels, rows), 0.0)
        with tf.GradientTape() as tape:
            out = model(feats, training=True)  # [b * n, E]
            members = tf.unstack(tf.reshape(out, [-1, n_members]), axis=1)
            loss = tf.add_n([task.loss(tf.reshape(m, tf.shape(labels)), labels, mask)
                             for m in members]) + tf.add_n(
                [tf.constant(0.0)] + [tf.cast(x, tf.float32) for x in model.losses])
        grads = tape.gradient(loss, model.trainable_variables)
        opt.apply_gradients(zip(grads, model.trainable_variables, strict=True))
        return loss

    cum = np.concatenate([[0.0], np.cumsum(train.labels)])
    has_pos = cum[train.offsets[1:]] - cum[train.offsets[:-1]] > 0
    usable = np.flatnonzero(has_pos) if task.loss_name == "listwise" else np.arange(len(train))
    history: dict[str, Any] = {"loss": [], "valid_ndcg@10": []}
    best, best_epoch, best_weights = -1.0, -1, model.get_weights()
    bar = tqdm(range(config.epochs), desc=f"ranker [{task.loss_name}]", file=sys.stderr,
               disable=not config.progress, leave=False)
    for epoch in bar:
        order = rng.permutation(usable)
        losses = []
        for lo in range(0, len(order), config.lists_per_batch):
            rows, mask = train.padded_rows(order[lo:lo + config.lists_per_batch], width)
            losses.append(float(step(tf.constant(rows), tf.constant(mask))))
        val = task.metric(valid, predict_logits(model, valid.features,
                                                item_lookups=valid.item_lookups))
        history["loss"].append(float(np.mean(losses)) if losses else 0.0)
        history["valid_ndcg@10"].append(val)
        bar.set_postfix(loss=history["loss"][-1], ndcg=val)
        if val > best:
            best, best_epoch, best_weights = val, epoch, model.get_weights()
        elif epoch - best_epoch >= config.patience:
            break
    bar.close()
    model.set_weights(best_weights)
    history["best_epoch"] = best_epoch + 1
    history["best_valid_ndcg@10"] = best
    return history
