"""Dense retrieval: cosine similarity between unit-normalised sentence embeddings (exact search, numpy)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from tunewise import embeddings

Embedder = Callable[[list[str]], np.ndarray]
"""Texts -> unit-normalised vectors, shape ``(n, dim)``."""


def default_embedder(texts: list[str]) -> np.ndarray:
    """The embedded MiniLM (``tunewise.embeddings.embed_texts``); the model loads on the first call."""

    return embeddings.embed_texts(texts)


class DenseIndex:
    """Document vectors plus the embedder that made them (queries must use the same one)."""

    def __init__(self, ids: list[str], vectors: np.ndarray, embed: Embedder = default_embedder) -> None:
        if len(ids) != len(vectors):
            raise ValueError(f"{len(ids)} ids but {len(vectors)} vectors")
        self.ids = ids
        self.vectors = np.asarray(vectors, dtype=np.float32)
        self.embed = embed

    @classmethod
    def build(cls, ids: list[str], texts: list[str], embed: Embedder = default_embedder) -> DenseIndex:
        return cls(list(ids), embed(list(texts)), embed)

    def search(self, query: str, k: int) -> list[tuple[str, float]]:
        """The ``k`` most similar documents as ``(id, cosine)``, best first."""
        query_vector = self.embed([query])[0]
        scores = self.vectors @ query_vector
        k = min(k, len(self.ids))
        top = np.argpartition(-scores, k - 1)[:k]
        order = top[np.argsort(-scores[top], kind="stable")]
        return [(self.ids[int(i)], float(scores[i])) for i in order]

    def save(self, directory: Path) -> None:
        np.save(directory / "dense_vectors.npy", self.vectors)

    @classmethod
    def load(cls, directory: Path, ids: list[str], embed: Embedder = default_embedder) -> DenseIndex:
        return cls(ids, np.load(directory / "dense_vectors.npy"), embed)
