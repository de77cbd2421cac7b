"""Generation metrics: ROUGE-L (LCS F-measure on lower-cased word tokens) and embedding cosine similarity."""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from tunewise import embeddings
from tunewise.metrics.context import MetricContext
from tunewise.metrics.normalize import as_text

_WORD = re.compile(r"\w+")


def word_tokens(text: str) -> list[str]:
    """Lower-cased word tokens (runs of letters, digits and underscores)."""
    return _WORD.findall(text.lower())


def lcs_length(a: list[str], b: list[str]) -> int:
    """Length of the longest common subsequence of two token lists.

    Bit-parallel (Hyyrö 2004): one big-integer update per token of ``b``, so ``O(len(b) * len(a) / 64)`` word
    operations instead of the ``O(len(a) * len(b))`` Python-level dynamic programme.
    """
    if not a or not b:
        return 0
    masks: dict[str, int] = {}
    for i, token in enumerate(a):
        masks[token] = masks.get(token, 0) | (1 << i)
    full = (1 << len(a)) - 1
    v = full
    for token in b:
        u = v & masks.get(token, 0)
        v = ((v + u) | (v - u)) & full
    return len(a) - bin(v).count("1")


def rouge_l(prediction: str, reference: str) -> float:
    """ROUGE-L F1: ``2PR / (P + R)`` with ``P = LCS / |prediction|`` and ``R = LCS / |reference|``.

    Both empty scores 1.0; exactly one empty scores 0.0.
    """
    pred, ref = word_tokens(prediction), word_tokens(reference)
    if not pred and not ref:
        return 1.0
    lcs = lcs_length(pred, ref)
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(pred), lcs / len(ref)
    return 2 * precision * recall / (precision + recall)


def score_generate(ctx: MetricContext, outputs: list[str], targets: list[Any]) -> list[tuple[str, dict[str, Any]]]:
    """Score free-text outputs: ROUGE-L each, and (unless disabled) the cosine of their sentence embeddings.

    Embeddings are computed in two batched calls (all outputs, all references) with ``ctx.embedder`` or, by default,
    :func:`tunewise.embeddings.embed_texts` (the model loads on its first call, so other task kinds never load it).

    Returns:
        One ``(stripped output, {"rouge_l", "embedding_cosine"})`` per example.
    """
    predictions = [output.strip() for output in outputs]
    references = [as_text(target).strip() for target in targets]
    cosines: list[float | None] = [None] * len(predictions)
    if ctx.use_embeddings and predictions:
        embed = ctx.embedder
        if embed is None:
            embed = embeddings.embed_texts
        a, b = _unit(embed(predictions)), _unit(embed(references))
        cosines = [float(x) for x in np.clip(np.sum(a * b, axis=1), -1.0, 1.0)]
    results = []
    for prediction, reference, cosine in zip(predictions, references, cosines, strict=True):
        scores: dict[str, Any] = {"rouge_l": round(rouge_l(prediction, reference), 6)}
        if cosine is not None:
            scores["embedding_cosine"] = round(cosine, 6)
        results.append((prediction, scores))
    return results


def _unit(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float64)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)
