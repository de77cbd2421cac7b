"""Every signal of one window (the whole window or one bucket of its trend) against the reference, judged."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tunewise.config import MonitorSpec
from tunewise.metrics import MetricContext
from tunewise.monitor.descriptors import input_signals
from tunewise.monitor.outputs import OutputReference, output_signals
from tunewise.monitor.record import SignalResult
from tunewise.monitor.stats import (
    domain_classifier_auc,
    mmd_permutation_test,
    nearest_cosine_distance,
    novel_share,
    proportion_difference_ci,
    two_proportion_test,
)
from tunewise.monitor.traffic import TrafficRow
from tunewise.monitor.verdict import judge

MAX_TESTED = 1000
"""Window rows the embedding tests use at most (a seeded sample beyond): the MMD kernel grows with the square."""


@dataclass(frozen=True)
class ReferenceSide:
    """The reference as the tests see it: inputs, their embeddings, and the output reference."""

    texts: list[str]
    vectors: np.ndarray
    outputs: OutputReference


@dataclass(frozen=True)
class EmbeddingDrift:
    """The embedding test's per-row figures: which window rows were tested, how production-like each looked."""

    indices: np.ndarray
    domain_scores: np.ndarray
    nearest_distances: np.ndarray


def embedding_signal(
    reference: np.ndarray, window: np.ndarray, spec: MonitorSpec
) -> tuple[SignalResult, EmbeddingDrift]:
    """Input drift on sentence embeddings: MMD² (RBF kernel, median bandwidth) with its permutation p-value as the
    test, and the domain classifier's out-of-fold AUC (with its bootstrap CI) as the effect.

    Args:
        reference: the reference inputs' embeddings.
        window: the window inputs' embeddings (a seeded sample of :data:`MAX_TESTED` when there are more).
    """
    indices = np.arange(len(window))
    if len(window) > MAX_TESTED:
        indices = np.sort(np.random.default_rng(spec.seed).choice(len(window), MAX_TESTED, replace=False))
    tested = window[indices]
    mmd = mmd_permutation_test(reference, tested, permutations=spec.permutations, seed=spec.seed)
    auc = domain_classifier_auc(reference, tested, bootstrap=spec.bootstrap, seed=spec.seed)
    signal = SignalResult(
        name="input_auc",
        group="input",
        effect=auc.auc,
        ci_low=auc.ci_low,
        ci_high=auc.ci_high,
        p_value=mmd.p_value,
        test="mmd_permutation",
        n_reference=len(reference),
        n_window=len(tested),
        detail={
            "mmd2": mmd.mmd2,
            "bandwidth": mmd.bandwidth,
            "permutations": mmd.permutations,
            "folds": auc.folds,
            "sampled_from": len(window),
        },
    )
    drift = EmbeddingDrift(indices, auc.scores, nearest_cosine_distance(tested, reference))
    return signal, drift


def novelty_signal(reference: np.ndarray, window: np.ndarray) -> SignalResult:
    """The rise of the share of window inputs unlike any reference input (see :func:`novel_share`), one-sided."""
    k_window, n_window, k_reference, n_reference, cut = novel_share(reference, window)
    low, high = proportion_difference_ci(k_reference, n_reference, k_window, n_window)
    rise = k_window / n_window - k_reference / n_reference
    two_sided = two_proportion_test(k_window, n_window, k_reference, n_reference)
    return SignalResult(
        name="novel_inputs",
        group="input",
        effect=rise,
        ci_low=low,
        ci_high=high,
        p_value=two_sided / 2 if rise > 0 else 1.0,
        test="two_proportion (one-sided)",
        reference_value=k_reference / n_reference,
        window_value=k_window / n_window,
        n_reference=n_reference,
        n_window=n_window,
        detail={"cut_cosine_distance": cut},
    )


def window_signals(
    ctx: MetricContext,
    spec: MonitorSpec,
    reference: ReferenceSide,
    rows: list[TrafficRow],
    vectors: np.ndarray,
    *,
    extra: list[SignalResult] | None = None,
) -> tuple[list[SignalResult], EmbeddingDrift]:
    """Input, embedding and output signals of ``rows`` (plus ``extra``, e.g. quality), Holm-corrected and judged.

    Args:
        vectors: the embeddings of ``rows``, in order.
    """
    texts = [r.text for r in rows]
    embedding, drift = embedding_signal(reference.vectors, vectors, spec)
    signals = [
        embedding,
        novelty_signal(reference.vectors, vectors[drift.indices]),
        *input_signals(reference.texts, texts, bootstrap=spec.bootstrap, seed=spec.seed),
        *output_signals(ctx, reference.outputs, rows, bootstrap=spec.bootstrap, seed=spec.seed),
        *(extra or []),
    ]
    return judge(signals, spec.thresholds, spec.alpha), drift
