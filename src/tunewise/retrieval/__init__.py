"""Retrieval over a document collection (BM25, dense, fused) and the ``rag`` prompt strategy."""

from tunewise.retrieval.documents import Document, load_documents
from tunewise.retrieval.fusion import reciprocal_rank_fusion
from tunewise.retrieval.index import RetrievalIndex, build_index, load_or_build, recall_at_k

__all__ = [
    "Document",
    "RetrievalIndex",
    "build_index",
    "load_documents",
    "load_or_build",
    "recall_at_k",
    "reciprocal_rank_fusion",
]
