"""Reciprocal rank fusion (Cormack, Clarke & Büttcher, SIGIR 2009): combine rankings without comparing scores."""

from __future__ import annotations

from collections.abc import Sequence

RRF_K = 60
"""The constant of the original paper: damps the weight of the very first ranks."""


def reciprocal_rank_fusion(
    rankings: Sequence[Sequence[str]], *, k: int = RRF_K, top: int | None = None
) -> list[tuple[str, float]]:
    """Fuse ranked id lists: ``score(d) = sum over rankings of 1 / (k + rank(d))`` (rank starts at 1).

    Args:
        rankings: each a list of ids, best first; an id absent from a ranking contributes nothing there.
        k: the RRF constant (> 0).
        top: keep only this many results.

    Returns:
        ``(id, score)`` pairs, best first; ties keep the order of first appearance.
    """
    if k <= 0:
        raise ValueError("k must be positive")
    scores: dict[str, float] = {}
    for ranking in rankings:
        for rank, doc_id in enumerate(ranking, start=1):
            scores[doc_id] = scores.get(doc_id, 0.0) + 1.0 / (k + rank)
    fused = sorted(scores.items(), key=lambda item: -item[1])  # sorted() is stable: ties keep first appearance
    return fused[:top] if top is not None else fused
