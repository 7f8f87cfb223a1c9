"""File names inside an artifact bundle: the contract between training and serving.

Rows of every per-item file are in the bundle's item order (position =
``item_idx``), the order of ``items.parquet``.
"""

from __future__ import annotations

ITEMS = "items.parquet"  # item_id, title, year, genres, tags, overview, popularity
USERS = "users.parquet"  # user_id, history (item ids, most recent last) [+ gender, age, occupation]
POPULAR = "popular.json"  # top items with metadata, best first (the gateway's fallback)
FEATURES = "features.json"  # shared.features.FeatureEncoder
CONTENT_VECTORS = "vectors/content.npy"  # [n_items, 384] float32, L2-normalised BERT vectors
ITEM_VECTORS = "vectors/item_tower.npy"  # [n_items, 64] float32, L2-normalised item-tower vectors
CONTENT_INDEX = "index/content.ann"  # Annoy (angular) over CONTENT_VECTORS
ITEM_INDEX = "index/item_tower.ann"  # Annoy (angular) over ITEM_VECTORS
KNN_NEIGHBORS = "knn/neighbors.npy"  # [n_items, K] int32 item-kNN neighbours (-1 = none)
KNN_WEIGHTS = "knn/weights.npy"  # [n_items, K] float32 cosine weights
QUERY_TOWER = "models/query_tower.keras"
CANDIDATE_TOWER = "models/candidate_tower.keras"
RANKER = "models/ranker.keras"
RANKER_CONFIG = "models/ranker.json"  # feature config of the ranker
