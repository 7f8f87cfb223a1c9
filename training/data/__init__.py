"""Dataset loading: the project's own format, MovieLens readers, item text, downloads."""

from training.data.dataset import Dataset
from training.data.download import DATASETS, download_dataset
from training.data.enrich import enrich_with_text
from training.data.load import load_dataset
from training.data.movielens import load_movielens

__all__ = ["DATASETS", "Dataset", "download_dataset", "enrich_with_text", "load_dataset",
           "load_movielens"]
