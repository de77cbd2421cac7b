"""Generation: ROUGE-L (bit-parallel LCS) and embedding cosine with an injected embedder."""

from __future__ import annotations

import random

import numpy as np
import pytest

from tunewise.metrics import MetricContext, score_outputs, summarize_scores
from tunewise.metrics.generate import lcs_length, rouge_l


def _lcs_dp(a: list[str], b: list[str]) -> int:
    table = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i, x in enumerate(a):
        for j, y in enumerate(b):
            table[i + 1][j + 1] = table[i][j] + 1 if x == y else max(table[i][j + 1], table[i + 1][j])
    return table[-1][-1]


def test_lcs_matches_dynamic_programme() -> None:
    rng = random.Random(0)
    for _ in range(300):
        a = [rng.choice("abcd") for _ in range(rng.randint(0, 70))]
        b = [rng.choice("abcd") for _ in range(rng.randint(0, 70))]
        assert lcs_length(a, b) == _lcs_dp(a, b)


def test_rouge_l_hand_computed() -> None:
    # LCS "the cat on the mat" = 5 of 6 tokens each side
    assert rouge_l("The cat sat on the mat.", "the cat is on the mat") == pytest.approx(5 / 6)
    # LCS 2 ("a c"): P = 2/2, R = 2/4 -> F = 2/3
    assert rouge_l("a c", "a b c d") == pytest.approx(2 / 3)
    assert rouge_l("", "") == 1.0
    assert rouge_l("words", "") == 0.0
    assert rouge_l("x y", "z") == 0.0


def _fake_embedder(texts: list[str]) -> np.ndarray:
    table = {"yes": [1.0, 0.0], "no": [0.0, 1.0], "yeah": [1.0, 1.0]}
    return np.array([table[t] for t in texts])


def test_generate_scores_and_summary() -> None:
    ctx = MetricContext(kind="generate", embedder=_fake_embedder)
    results = score_outputs(ctx, ["  yes\n", "no", "yeah"], ["yes", "yes", "yes"])
    assert [p for p, _ in results] == ["yes", "no", "yeah"]
    scores = [s for _, s in results]
    assert [s["rouge_l"] for s in scores] == [1.0, 0.0, 0.0]
    assert [s["embedding_cosine"] for s in scores] == pytest.approx([1.0, 0.0, 2**-0.5], abs=1e-6)
    metrics, _ = summarize_scores(ctx, scores, samples=100)
    assert metrics["rouge_l"].value == pytest.approx(1 / 3)
    assert metrics["embedding_cosine"].value == pytest.approx((1 + 2**-0.5) / 3, abs=1e-6)


def test_chat_without_embeddings() -> None:
    ctx = MetricContext(kind="chat", use_embeddings=False)
    [(_, scores)] = score_outputs(ctx, ["hello there"], ["hello"])
    assert scores == {"rouge_l": pytest.approx(2 / 3)}
    metrics, _ = summarize_scores(ctx, [scores], samples=100)
    assert set(metrics) == {"rouge_l"}


@pytest.mark.integration
def test_real_embeddings_rank_paraphrase_above_unrelated() -> None:
    ctx = MetricContext(kind="generate")
    results = score_outputs(
        ctx, ["The cat sat on the mat.", "Stock prices fell sharply."], ["A cat was sitting on a mat."] * 2
    )
    close, far = (s["embedding_cosine"] for _, s in results)
    assert close > 0.6 > far
