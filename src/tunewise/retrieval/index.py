"""A retrieval index over a document collection: BM25, dense or both fused; built once, persisted, reloaded.

Indexes live under ``<project>/.tunewise/indexes/<hash>/`` where the hash covers the collection's bytes, the
retriever kind and the tokeniser/embedder version, so an edited collection is re-indexed and never mixed up.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from tunewise.io.atomic import atomic_dir, file_sha256
from tunewise.retrieval.bm25 import TOKEN_PATTERN, BM25Index
from tunewise.retrieval.dense import DenseIndex, Embedder, default_embedder
from tunewise.retrieval.documents import Document, load_documents
from tunewise.retrieval.fusion import reciprocal_rank_fusion

RetrieverKind = Literal["bm25", "dense", "hybrid"]
INDEX_VERSION = 1
FUSION_DEPTH = 20
"""How many results each retriever contributes to the fusion (at least 4 x k)."""


@dataclass
class RetrievalIndex:
    """Documents plus the indexes a retriever kind needs."""

    kind: RetrieverKind
    documents: dict[str, Document]
    bm25: BM25Index | None = None
    dense: DenseIndex | None = None
    directory: Path | None = None
    meta: dict[str, object] = field(default_factory=dict)

    def search(self, query: str, k: int) -> list[tuple[Document, float]]:
        """The ``k`` best documents for ``query``, best first, with the retriever's score (RRF score when hybrid)."""
        if k < 1:
            raise ValueError("k must be at least 1")
        if self.kind == "bm25":
            hits = self._bm25().search(query, k)
        elif self.kind == "dense":
            hits = self._dense().search(query, k)
        else:
            depth = max(FUSION_DEPTH, 4 * k)
            rankings = [
                [i for i, _ in self._bm25().search(query, depth)],
                [i for i, _ in self._dense().search(query, depth)],
            ]
            hits = reciprocal_rank_fusion(rankings, top=k)
        return [(self.documents[doc_id], score) for doc_id, score in hits]

    def _bm25(self) -> BM25Index:
        assert self.bm25 is not None, "index built without bm25"
        return self.bm25

    def _dense(self) -> DenseIndex:
        assert self.dense is not None, "index built without dense vectors"
        return self.dense


def build_index(
    documents: list[Document], kind: RetrieverKind = "hybrid", *, embed: Embedder = default_embedder
) -> RetrievalIndex:
    """Index ``documents`` in memory for ``kind`` retrieval."""
    ids = [d.id for d in documents]
    texts = [d.indexed_text for d in documents]
    bm25 = BM25Index.build(ids, texts) if kind in ("bm25", "hybrid") else None
    dense = DenseIndex.build(ids, texts, embed) if kind in ("dense", "hybrid") else None
    return RetrievalIndex(kind, {d.id: d for d in documents}, bm25, dense)


def index_key(documents_path: Path, kind: RetrieverKind, embedder_name: str) -> str:
    """The content hash naming an index directory."""
    import hashlib

    material = json.dumps(
        {
            "docs": file_sha256(documents_path),
            "kind": kind,
            "tokens": TOKEN_PATTERN,
            "embedder": embedder_name,
            "v": INDEX_VERSION,
        },
        sort_keys=True,
    )
    return hashlib.sha256(material.encode()).hexdigest()[:24]


def load_or_build(
    documents_path: Path,
    cache_root: Path,
    kind: RetrieverKind = "hybrid",
    *,
    embed: Embedder = default_embedder,
    embedder_name: str = "all-MiniLM-L6-v2",
) -> RetrievalIndex:
    """Reload the persisted index for this collection and kind, or build and persist it.

    Args:
        documents_path: the collection (``data.documents``).
        cache_root: where indexes live (``<project>/.tunewise/indexes``).
        kind: ``bm25``, ``dense`` or ``hybrid``.
        embed: the dense embedder (tests pass a cheap one); ``embedder_name`` must identify it.

    Raises:
        InputError: the collection is missing, empty or malformed.
    """
    documents = load_documents(documents_path)
    directory = cache_root / index_key(documents_path, kind, embedder_name)
    ids = [d.id for d in documents]
    if (directory / "index.json").is_file():
        bm25 = BM25Index.load(directory) if kind in ("bm25", "hybrid") else None
        dense = DenseIndex.load(directory, ids, embed) if kind in ("dense", "hybrid") else None
        meta = json.loads((directory / "index.json").read_text(encoding="utf-8"))
        return RetrievalIndex(kind, {d.id: d for d in documents}, bm25, dense, directory, {**meta, "reloaded": True})
    index = build_index(documents, kind, embed=embed)
    meta = {"documents": str(documents_path), "n_documents": len(documents), "kind": kind, "embedder": embedder_name}
    with atomic_dir(directory, replace=True) as tmp:
        tmp = Path(tmp)
        if index.bm25 is not None:
            index.bm25.save(tmp)
        if index.dense is not None:
            index.dense.save(tmp)
        (tmp / "index.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")
    index.directory = directory
    index.meta = {**meta, "reloaded": False}
    return index


def recall_at_k(retrieved: list[list[str]], gold: list[set[str]]) -> float:
    """Share of queries whose top-k list holds at least one gold document (queries without gold are skipped).

    Raises:
        ValueError: no query has a gold document.
    """
    pairs = [(r, g) for r, g in zip(retrieved, gold, strict=True) if g]
    if not pairs:
        raise ValueError("no query has a gold document id")
    return sum(1 for r, g in pairs if g.intersection(r)) / len(pairs)
