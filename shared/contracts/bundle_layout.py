"""File names inside an artifact bundle: the contract between training and serving.

Rows of every per-item file are in the bundle's item order (position =
``item_idx``), the order of ``items.parquet``; ``two_tower/feature_encoder.json``
holds the same item order. Training writes each component into its folder with
the component's own save method; the pipeline checks that the files it wrote
are the ones named here.
"""

from __future__ import annotations

ITEMS = "items.parquet"  # item_id, title, year, genres, tags, overview, popularity
#: ITEMS also holds one column per item attribute, ``attr:<name>`` (categorical lists as
#: list columns, single categoricals and text as str or None, numeric as float64 with NaN
#: when missing), declared (name, type, list) in the manifest's
#: ``components.item_attributes``, and the bool column ``available``. Bundles written
#: before these columns have neither: every item is available, genres/year are attributes.
ATTRIBUTE_PREFIX = "attr:"
AVAILABLE = "available"
ATTRIBUTES_COMPONENT = "item_attributes"
#: user_id, history (item ids, most recent last) [+ gender, age, occupation]: every user with
#: an interaction in the training data; the models know those with a positive one, listed
#: first (the rows of the feature encoder and ranker tables); the others (only low ratings
#: or negative events) follow with an empty history.
USERS = "users.parquet"
#: Every item each user interacted with in the training data (all ratings, low ones too,
#: and the feedback events folded in), as CSR arrays over the rows of USERS: user row u's
#: item positions are ``SEEN_ITEMS[SEEN_INDPTR[u]:SEEN_INDPTR[u + 1]]`` (sorted, unique).
#: USERS' ``history`` keeps only the recent items the query tower reads; ``exclude_seen``
#: reads these.
SEEN_INDPTR = "users/seen_indptr.npy"  # [n_users + 1] int64
SEEN_ITEMS = "users/seen_items.npy"  # [n_seen] int32 item positions
#: Items each user hid or disliked in the training data (negative events), the same CSR
#: layout over the rows of USERS: never recommended to that user, whatever exclude_seen.
#: Optional (bundles written before negative events were kept have none: nothing hidden).
HIDDEN_INDPTR = "users/hidden_indptr.npy"  # [n_users + 1] int64
HIDDEN_ITEMS = "users/hidden_items.npy"  # [n_hidden] int32 item positions
POPULAR = "popular.json"  # top items with metadata, best first (the gateway's fallback)
CONTENT_VECTORS = "vectors/content.npy"  # [n_items, 384] float32, L2-normalised BERT vectors
CONTENT_INDEX = "index/content.ann"  # Annoy (angular) over CONTENT_VECTORS
ITEM_INDEX = "index/item_tower.ann"  # Annoy (angular) over ITEM_VECTORS
#: Optional HNSW graphs (hnswlib, cosine) over the same vectors: large-catalogue bundles
#: built with them; retrieval serves from them with HYBRIDREC_ANN_BACKEND=auto|hnsw.
CONTENT_HNSW = "index/content.hnsw"
ITEM_HNSW = "index/item_tower.hnsw"

TWO_TOWER_DIR = "two_tower"
QUERY_TOWER = "two_tower/query_tower.keras"
CANDIDATE_TOWER = "two_tower/candidate_tower.keras"
FEATURES = "two_tower/feature_encoder.json"  # shared.model.features.FeatureEncoder
ITEM_VECTORS = "two_tower/item_vectors.npy"  # [n_items, 64] float32, L2-normalised

SOURCES_DIR = "sources"
#: Neighbour-table candidate sources: name -> (neighbors [n_items, K] int32, weights float32).
NEIGHBOR_TABLES = {
    "ease": ("sources/ease_neighbors.npy", "sources/ease_weights.npy"),
    "item_knn": ("sources/item_knn_neighbors.npy", "sources/item_knn_weights.npy"),
    "rp3beta": ("sources/rp3beta_neighbors.npy", "sources/rp3beta_weights.npy"),
}

RANKER_DIR = "ranker"
RANKER = "ranker/ranker.keras"
RANKER_CONFIG = "ranker/two_stage.json"  # source names, config, dense feature names
# ranker/ranker_tables.npz + ranker/ranker_tables.json: shared.model.ranker_features tables
