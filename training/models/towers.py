"""The two towers of the retrieval model and their configuration.

Both towers are Keras functional models built only from stock layers and the
registered layers of :mod:`shared.model.layers`, so each can be saved on its own as
``.keras`` and loaded with ``safe_mode=True`` by the services.

* Query tower: user-ID embedding (row 0 = unknown, trained through ID dropout)
  + masked mean of the embeddings of the user's recent items + user feature
  embeddings (when the dataset has them) + genre-preference profile
  -> MLP -> ``output_dim`` L2-normalised.
* Candidate tower: item-ID embedding (row 0 = new item, trained through ID
  dropout) + projection of the content (BERT) vector + genre multi-hot + year
  bucket embedding -> MLP -> ``output_dim`` L2-normalised.

Both towers also read the other attributes of :class:`shared.model.attributes.AttributeEncoder`
when the dataset has some: the candidate tower the item attributes, the query tower the user
attributes (:func:`attribute_parts`).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import Any

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras

from shared.contracts.errors import ConfigError
from shared.model import features as F
from shared.model.attributes import SideEncoder
from shared.model.item_inputs import CONTENT_INPUT, GENRES_INPUT, ITEM_INPUT, YEAR_INPUT
from shared.model.layers import IdDropout, L2Normalize, MaskedMeanPooling

HISTORY_MODES = ("auto", "before", "others", "mixed")
LAZY_ADAM_ROWS = 100_000
"""Above this many id-table rows (users + 2 x items), ``optimizer="auto"`` is lazy Adam."""
_SET_SPLITS = ("random", "cold-items")


@dataclass
class TwoTowerConfig:
    """Hyperparameters of the two-tower retrieval model.

    Attributes:
        output_dim: Size of the L2-normalised query/item vectors.
        id_dim: Size of the user-ID and item-ID embeddings.
        content_dim: Size the content vector is projected to.
        feature_dim: Size of each user-feature embedding.
        year_dim: Size of the year-bucket embedding.
        hidden_units: Hidden layer sizes of each tower's MLP.
        user_id_dropout: Probability that a training query's user id becomes 0.
        item_id_dropout: Probability that a training item's id becomes 0.
        share_item_embeddings: History items use the candidate tower's item-ID table.
        temperature: Softmax temperature dividing the cosine logits.
        logq_correction: Subtract log sampling probability of each in-batch item.
        remove_accidental_hits: Mask in-batch negatives equal to the positive item.
        history_length: Recent items the query tower sees.
        history_mode: History of a training example (the target is never in it):
            ``before`` = the user's items strictly earlier than the target (next-item
            prediction; best on temporal splits), ``others`` = the user's other items
            at any time (set completion; best on random splits), ``mixed`` =
            ``before`` with probability ``before_fraction``, else ``others``, and
            ``auto`` = ``others`` for random and cold-items splits, else ``before``
            (see :meth:`resolve_history_mode`).
        before_fraction: Share of ``before`` histories in ``mixed`` mode.
        epochs: Training epochs (upper bound when ``select_epoch_on_valid``).
        max_examples_per_epoch: An epoch trains on a seeded sample of this many examples
            (a new sample each epoch) when there are more (None = all). Bounds the cost of
            an epoch on large data; ml-latest-small's 80k examples are all used.
        batch_size: Examples per batch (also the number of in-batch negatives).
        learning_rate: Adam learning rate.
        optimizer: ``adam`` (Keras' Adam, which rewrites every row of every embedding
            table and its moments at each step), ``lazy_adam`` (only the rows a batch uses,
            :class:`training.models.lazy_adam.LazyAdam`) or ``auto``: ``lazy_adam`` when the
            id tables hold more than :data:`LAZY_ADAM_ROWS` rows (users + 2 x items), else
            ``adam``. On ml-latest-small (20k rows, so ``adam``) lazy Adam gave a lower
            validation NDCG@10 (0.1116 vs 0.1157, temporal-user, one seed) for no speed-up;
            at 62k items a step costs 2.5 times less CPU with it. Ignored with weight decay.
        weight_decay: AdamW decoupled weight decay (0 = plain Adam).
        select_epoch_on_valid: Keep the weights of the epoch with the best
            validation Recall@``valid_k`` (needs a validation split).
        valid_k: Cut-off of the validation recall.
        valid_max_users: Validation users sampled per epoch (bounds its cost).
        seed: Seed of initialisation, dropout and shuffling.
        verbose: Keras ``fit`` verbosity (0 silent, 1 progress bar, 2 one line per epoch).
        progress: One tqdm bar on stderr over all epochs' steps, with the fit's ETA
            (:class:`training.models.progress.FitProgress`).
    """

    output_dim: int = 64
    id_dim: int = 64
    content_dim: int = 64
    feature_dim: int = 16
    year_dim: int = 8
    hidden_units: tuple[int, ...] = (128,)
    user_id_dropout: float = 0.3
    item_id_dropout: float = 0.4
    share_item_embeddings: bool = False
    temperature: float = 0.1
    logq_correction: bool = True
    remove_accidental_hits: bool = True
    history_length: int = F.DEFAULT_HISTORY_LENGTH
    history_mode: str = "auto"
    before_fraction: float = 0.5
    epochs: int = 8
    max_examples_per_epoch: int | None = None
    batch_size: int = 512
    learning_rate: float = 3e-3
    optimizer: str = "auto"
    weight_decay: float = 0.0
    select_epoch_on_valid: bool = True
    valid_k: int = 10
    valid_max_users: int = 2000
    seed: int = 42
    verbose: int = 1
    progress: bool = True

    def __post_init__(self) -> None:
        self.hidden_units = tuple(int(u) for u in self.hidden_units)
        for name in ("user_id_dropout", "item_id_dropout"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise ConfigError(f"{name} must be in [0, 1), got {value}")
        if self.history_mode not in HISTORY_MODES:
            raise ConfigError(
                f"history_mode must be one of {list(HISTORY_MODES)}, got {self.history_mode!r}"
            )
        if self.optimizer not in ("auto", "adam", "lazy_adam"):
            raise ConfigError(
                f"optimizer must be auto, adam or lazy_adam, got {self.optimizer!r}")
        if not 0.0 <= self.before_fraction <= 1.0:
            raise ConfigError(f"before_fraction must be in [0, 1], got {self.before_fraction}")
        if self.temperature <= 0:
            raise ConfigError(f"temperature must be > 0, got {self.temperature}")
        for name in ("output_dim", "id_dim", "content_dim", "epochs", "batch_size"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")

    def resolve_history_mode(self, split: str | None) -> str:
        """The concrete history mode for data of split kind ``split`` (``auto`` resolved).

        Random and cold-items splits hold out random interactions of a user's set,
        so set completion (``others``) matches them; temporal splits and
        production (predict what comes next) get next-item histories (``before``).
        """
        if self.history_mode != "auto":
            return self.history_mode
        return "others" if split in _SET_SPLITS else "before"

    def resolve_optimizer(self, n_users: int, n_items: int) -> str:
        """``adam`` or ``lazy_adam`` for tables of ``n_users`` users and ``n_items`` items."""
        if self.optimizer != "auto":
            return self.optimizer
        return "lazy_adam" if n_users + 2 * n_items > LAZY_ADAM_ROWS else "adam"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form for the manifest."""
        out = asdict(self)
        out["hidden_units"] = list(self.hidden_units)
        return out


def _mlp(x: Any, units: tuple[int, ...], output_dim: int, prefix: str) -> Any:
    for k, n in enumerate(units):
        x = keras.layers.Dense(n, activation="relu", name=f"{prefix}_hidden_{k}")(x)
    x = keras.layers.Dense(output_dim, name=f"{prefix}_output")(x)
    return L2Normalize(name=f"{prefix}_l2")(x)


def _id_embedding(rows: int, dim: int, name: str) -> keras.layers.Embedding:
    return keras.layers.Embedding(
        rows, dim, embeddings_initializer=keras.initializers.RandomNormal(stddev=0.05), name=name
    )


def attribute_parts(
    side: SideEncoder | None, dim: int, inputs: dict[str, Any], suffix: str = ""
) -> list[Any]:
    """Inputs and feature tensors of one side's attributes.

    Each categorical attribute is an int row (0 = padding) whose positions are embedded
    (``dim`` wide) and mean-pooled over the non-padding ones; the numeric block (positions
    and missing indicators) is passed as it is. The new ``keras.Input`` s are added to
    ``inputs`` (shared between calls, so an ensemble's members read the same inputs).

    Returns:
        The tensors to concatenate ([B, dim] per categorical attribute, [B, 2N] numeric).
    """
    if side is None:
        return []
    parts = []
    for name, (width, rows) in side.input_specs().items():
        if name not in inputs:
            inputs[name] = keras.Input(shape=(width,), dtype="int32" if rows else "float32",
                                       name=name)
        if rows:
            emb = keras.layers.Embedding(rows, dim, name=f"{name}_embedding{suffix}")
            parts.append(MaskedMeanPooling(name=f"{name}_pooling{suffix}")(
                emb(inputs[name]), inputs[name]))
        else:
            parts.append(inputs[name])
    return parts


def build_towers(
    encoder: F.FeatureEncoder, content_dim: int, config: TwoTowerConfig
) -> tuple[keras.Model, keras.Model]:
    """Build the query and candidate towers.

    Args:
        encoder: Feature vocabularies (sizes of every table).
        content_dim: Width D of the content vectors (384 for all-MiniLM-L6-v2).
        config: Hyperparameters.

    Returns:
        ``(query_tower, candidate_tower)``. The query tower maps the dict of
        :meth:`FeatureEncoder.query_arrays` to [B, output_dim]; the candidate tower
        maps the dict of :meth:`FeatureEncoder.encode_items` to [B, output_dim].
        Both outputs are L2-normalised.
    """
    seed = int(config.seed)
    item_table = _id_embedding(encoder.n_items + 1, config.id_dim, "item_embedding")
    n_genres = encoder.n_genres

    # ---- candidate tower
    item_id = keras.Input(shape=(), dtype="int32", name=ITEM_INPUT)
    content = keras.Input(shape=(content_dim,), dtype="float32", name=CONTENT_INPUT)
    year = keras.Input(shape=(), dtype="int32", name=YEAR_INPUT)
    cand_inputs: dict[str, Any] = {
        ITEM_INPUT: item_id, CONTENT_INPUT: content, YEAR_INPUT: year
    }
    dropped = IdDropout(config.item_id_dropout, seed=seed + 1, name="item_id_dropout")(item_id)
    parts = [
        item_table(dropped),
        keras.layers.Dense(config.content_dim, name="content_projection")(content),
        keras.layers.Embedding(encoder.n_year_buckets + 1, config.year_dim, name="year_embedding")(
            year
        ),
    ]
    if n_genres:
        genres = keras.Input(shape=(n_genres,), dtype="float32", name=GENRES_INPUT)
        cand_inputs[GENRES_INPUT] = genres
        parts.append(genres)
    attrs = encoder.attributes
    parts += attribute_parts(attrs.item if attrs else None, config.feature_dim, cand_inputs)
    x = keras.layers.Concatenate(name="candidate_concat")(parts)
    candidate_tower = keras.Model(
        cand_inputs, _mlp(x, config.hidden_units, config.output_dim, "candidate"),
        name="candidate_tower",
    )

    # ---- query tower
    if config.history_length != encoder.history_length:
        raise ConfigError(
            f"config.history_length={config.history_length} differs from the encoder's "
            f"{encoder.history_length}; build the encoder with the same history length"
        )
    user_id = keras.Input(shape=(), dtype="int32", name=F.USER_INPUT)
    history = keras.Input(shape=(encoder.history_length,), dtype="int32", name=F.HISTORY_INPUT)
    query_inputs: dict[str, Any] = {F.USER_INPUT: user_id, F.HISTORY_INPUT: history}
    dropped_user = IdDropout(config.user_id_dropout, seed=seed + 2, name="user_id_dropout")(
        user_id
    )
    history_table = (
        item_table
        if config.share_item_embeddings
        else _id_embedding(encoder.n_items + 1, config.id_dim, "history_embedding")
    )
    parts = [
        _id_embedding(encoder.n_users + 1, config.id_dim, "user_embedding")(dropped_user),
        MaskedMeanPooling(name="history_pooling")(history_table(history), history),
    ]
    if n_genres:
        profile = keras.Input(shape=(n_genres,), dtype="float32", name=F.PROFILE_INPUT)
        query_inputs[F.PROFILE_INPUT] = profile
        parts.append(profile)
    for name in encoder.user_feature_names:
        feat = keras.Input(shape=(), dtype="int32", name=name)
        query_inputs[name] = feat
        parts.append(
            keras.layers.Embedding(
                encoder.feature_vocab_size(name), config.feature_dim, name=f"{name}_embedding"
            )(feat)
        )
    parts += attribute_parts(attrs.user if attrs else None, config.feature_dim, query_inputs)
    x = keras.layers.Concatenate(name="query_concat")(parts)
    query_tower = keras.Model(
        query_inputs, _mlp(x, config.hidden_units, config.output_dim, "query"),
        name="query_tower",
    )
    return query_tower, candidate_tower


def tower_inputs(model: keras.Model, arrays: dict[str, Any]) -> dict[str, Any]:
    """The subset of ``arrays`` a tower takes (by input name).

    Raises:
        ConfigError: An input the tower needs is missing from ``arrays``.
    """
    names = [t.name.split(":")[0] for t in model.inputs]
    missing = [n for n in names if n not in arrays]
    if missing:
        raise ConfigError(f"{model.name} needs inputs {missing}; got {sorted(arrays)}")
    return {n: arrays[n] for n in names}
