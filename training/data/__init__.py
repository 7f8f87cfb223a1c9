"""Dataset loading: MovieLens readers, item-text enrichment and verified downloads."""

from training.data.dataset import Dataset
from training.data.download import DATASETS, download_dataset
from training.data.enrich import enrich_with_text
from training.data.movielens import load_dataset

__all__ = ["DATASETS", "Dataset", "download_dataset", "enrich_with_text", "load_dataset"]
