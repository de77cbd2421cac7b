"""The two-sample statistics of drift: MMD with a permutation test, a domain classifier's AUC with a bootstrap CI,
and the small tests of rates, medians and label distributions; Holm's correction across signals.

The two embedding methods are the ones Evidently's embedding-drift presets offer (``model`` and ``mmd``), written
here on numpy, scipy and scikit-learn.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

LEVEL = 0.95


@dataclass(frozen=True)
class MMDTest:
    """Squared maximum mean discrepancy (biased estimate, RBF kernel) and its permutation p-value."""

    mmd2: float
    p_value: float
    bandwidth: float
    permutations: int


@dataclass(frozen=True)
class AUCResult:
    """A domain classifier's out-of-fold ROC AUC at telling sample ``y`` from sample ``x``, with a bootstrap CI."""

    auc: float
    ci_low: float
    ci_high: float
    scores: np.ndarray
    """The out-of-fold probability that each row of ``y`` belongs to ``y`` (the drift-driving examples score high)."""
    folds: int
    reference_scores: np.ndarray | None = None
    """The same out-of-fold probability for each row of ``x``: what an unchanged input scores."""


def median_bandwidth(z: np.ndarray, *, max_rows: int = 1000, seed: int = 0) -> float:
    """The median heuristic: the median pairwise Euclidean distance of ``z`` (on a seeded subsample of ``max_rows``)."""
    z = np.asarray(z, dtype=np.float64)
    if len(z) > max_rows:
        z = z[np.random.default_rng(seed).choice(len(z), max_rows, replace=False)]
    distances = _squared_distances(z, z)[np.triu_indices(len(z), k=1)]
    positive = distances[distances > 0]
    return float(np.sqrt(np.median(positive))) if positive.size else 1.0


def _squared_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    squares = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T
    return np.maximum(squares, 0.0)


def mmd_permutation_test(
    x: np.ndarray, y: np.ndarray, *, permutations: int = 1000, bandwidth: float | None = None, seed: int = 0
) -> MMDTest:
    """MMD² between ``x`` and ``y`` with an RBF kernel, and its permutation p-value.

    ``k(a, b) = exp(-|a - b|² / (2 σ²))`` with σ the median pairwise distance of the pooled sample unless given. The
    statistic is the biased (V-statistic) MMD², ``sᵀ K s`` with ``s`` = 1/n on ``x`` and -1/m on ``y``; the null
    distribution relabels the pooled rows at random. ``p = (1 + #{permuted ≥ observed}) / (1 + permutations)``, so
    it is never 0 and is exact in level.

    Raises:
        ValueError: an empty sample or samples of different widths.
    """
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if len(x) == 0 or len(y) == 0 or x.shape[1:] != y.shape[1:]:
        raise ValueError(f"two non-empty samples of one width are needed, got {x.shape} and {y.shape}")
    pooled = np.concatenate([x, y])
    n, total = len(x), len(pooled)
    sigma = bandwidth if bandwidth is not None else median_bandwidth(pooled, seed=seed)
    kernel = np.exp(-_squared_distances(pooled, pooled) / (2 * sigma * sigma))
    weights = np.concatenate([np.full(n, 1 / n), np.full(total - n, -1 / (total - n))])
    observed = float(weights @ kernel @ weights)
    rng = np.random.default_rng(seed)
    hits = 0
    for start in range(0, permutations, 256):
        size = min(256, permutations - start)
        shuffled = np.stack([weights[rng.permutation(total)] for _ in range(size)])
        null = ((shuffled @ kernel) * shuffled).sum(axis=1)
        hits += int(np.sum(null >= observed - 1e-12))  # a permutation equal to the observed one up to rounding counts
    return MMDTest(
        mmd2=max(observed, 0.0), p_value=(1 + hits) / (1 + permutations), bandwidth=sigma, permutations=permutations
    )


def auc_from_scores(negatives: np.ndarray, positives: np.ndarray) -> float:
    """ROC AUC: the probability that a positive scores above a negative (ties count one half), by ranks."""
    n, m = len(negatives), len(positives)
    if n == 0 or m == 0:
        return 0.5
    ranks = stats.rankdata(np.concatenate([negatives, positives]))
    return float((ranks[n:].sum() - m * (m + 1) / 2) / (n * m))


def domain_classifier_auc(
    x: np.ndarray, y: np.ndarray, *, folds: int = 5, bootstrap: int = 1000, seed: int = 0
) -> AUCResult:
    """How well a logistic regression tells ``y`` (the window) from ``x`` (the reference): out-of-fold ROC AUC.

    Stratified ``folds``-fold cross-validation (fewer when the smaller sample is smaller), balanced class weights so
    a small window against a large reference is not ignored; every row is scored by the model that did not see it,
    so the AUC is 0.5 in expectation when the two samples come from one distribution. The 95% CI resamples each
    class's out-of-fold scores (a stratified percentile bootstrap).

    Raises:
        ValueError: a sample with fewer than 2 rows.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if len(x) < 2 or len(y) < 2:
        raise ValueError(f"a domain classifier needs at least 2 rows per side, got {len(x)} and {len(y)}")
    features = np.concatenate([x, y])
    labels = np.concatenate([np.zeros(len(x), dtype=int), np.ones(len(y), dtype=int)])
    k = max(2, min(folds, len(x), len(y)))
    classifier = LogisticRegression(class_weight="balanced", max_iter=1000)
    splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    scores = cross_val_predict(classifier, features, labels, cv=splitter, method="predict_proba")[:, 1]
    negatives, positives = scores[: len(x)], scores[len(x) :]
    auc = auc_from_scores(negatives, positives)
    rng = np.random.default_rng(seed)
    resampled = np.array(
        [
            auc_from_scores(
                negatives[rng.integers(0, len(negatives), len(negatives))],
                positives[rng.integers(0, len(positives), len(positives))],
            )
            for _ in range(bootstrap)
        ]
    )
    low, high = np.percentile(resampled, [100 * (1 - LEVEL) / 2, 100 * (1 + LEVEL) / 2])
    return AUCResult(
        auc=auc, ci_low=float(low), ci_high=float(high), scores=positives, folds=k, reference_scores=negatives
    )


def holm(p_values: list[float | None]) -> list[float | None]:
    """Holm–Bonferroni adjusted p-values (``None`` entries are not tested and stay ``None``).

    The i-th smallest of the m p-values becomes ``max_{j ≤ i} min(1, (m - j + 1) p_(j))``; rejecting where the
    adjusted value is at most α controls the family-wise error rate at α.
    """
    tested = sorted((p, i) for i, p in enumerate(p_values) if p is not None)
    adjusted: list[float | None] = [None] * len(p_values)
    running = 0.0
    for rank, (p, index) in enumerate(tested):
        running = max(running, min(1.0, (len(tested) - rank) * p))
        adjusted[index] = running
    return adjusted


def two_proportion_test(k1: int, n1: int, k2: int, n2: int) -> float:
    """Two-sided p-value of ``k1/n1 == k2/n2``: the pooled z-test, or Fisher's exact test when a cell is small.

    Raises:
        ValueError: an empty sample or counts outside ``0..n``.
    """
    if n1 <= 0 or n2 <= 0 or not (0 <= k1 <= n1 and 0 <= k2 <= n2):
        raise ValueError(f"bad counts {k1}/{n1}, {k2}/{n2}")
    table = [[k1, n1 - k1], [k2, n2 - k2]]
    pooled = (k1 + k2) / (n1 + n2)
    if pooled in (0.0, 1.0):
        return 1.0
    expected = min(pooled * n1, (1 - pooled) * n1, pooled * n2, (1 - pooled) * n2)
    if expected < 5:
        return float(stats.fisher_exact(table).pvalue)
    z = (k1 / n1 - k2 / n2) / math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    return float(2 * stats.norm.sf(abs(z)))


def proportion_difference_ci(k1: int, n1: int, k2: int, n2: int) -> tuple[float, float]:
    """95% Newcombe (Wilson score) interval of ``k2/n2 - k1/n1``."""
    l1, u1 = _wilson(k1, n1)
    l2, u2 = _wilson(k2, n2)
    p1, p2 = k1 / n1, k2 / n2
    d = p2 - p1
    return d - math.sqrt((p2 - l2) ** 2 + (u1 - p1) ** 2), d + math.sqrt((u2 - p2) ** 2 + (p1 - l1) ** 2)


def _wilson(k: int, n: int) -> tuple[float, float]:
    z = stats.norm.ppf(1 - (1 - LEVEL) / 2)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def mann_whitney(x: np.ndarray, y: np.ndarray) -> float:
    """Two-sided Mann–Whitney U p-value (1.0 when both samples are constant and equal)."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if len(x) == 0 or len(y) == 0:
        return 1.0
    if np.ptp(np.concatenate([x, y])) == 0:
        return 1.0
    return float(stats.mannwhitneyu(x, y, alternative="two-sided").pvalue)


def relative_median_change(
    reference: np.ndarray, window: np.ndarray, *, bootstrap: int = 1000, seed: int = 0
) -> tuple[float, float, float]:
    """``|median(window) - median(reference)| / median(reference)`` with a 95% bootstrap CI (both sides resampled).

    A reference median of 0 is taken as 1, so the change stays finite.
    """
    reference, window = np.asarray(reference, dtype=np.float64), np.asarray(window, dtype=np.float64)

    def change(r: np.ndarray, w: np.ndarray) -> np.ndarray:
        mr = np.median(r, axis=-1)
        return np.abs(np.median(w, axis=-1) - mr) / np.where(mr > 0, mr, 1.0)

    value = float(change(reference, window))
    rng = np.random.default_rng(seed)
    r = reference[rng.integers(0, len(reference), (bootstrap, len(reference)))]
    w = window[rng.integers(0, len(window), (bootstrap, len(window)))]
    low, high = np.percentile(change(r, w), [100 * (1 - LEVEL) / 2, 100 * (1 + LEVEL) / 2])
    return value, float(low), float(high)


def label_shift(
    reference: list[str], window: list[str], *, bootstrap: int = 1000, seed: int = 0
) -> tuple[float, float, float, float]:
    """Total-variation distance between two label distributions, its 95% bootstrap CI, and its permutation p-value
    (see :func:`_tv_permutation_p`).

    Returns:
        ``(tv, ci_low, ci_high, p)``; ``p`` is 1.0 when only one label occurs on both sides.

    Raises:
        ValueError: an empty side.
    """
    if not reference or not window:
        raise ValueError("label shift needs labels on both sides")
    names = sorted(set(reference) | set(window))
    index = {name: i for i, name in enumerate(names)}
    ref_codes = np.array([index[x] for x in reference])
    win_codes = np.array([index[x] for x in window])
    ref_counts = np.bincount(ref_codes, minlength=len(names))
    win_counts = np.bincount(win_codes, minlength=len(names))
    tv = 0.5 * float(np.abs(ref_counts / len(reference) - win_counts / len(window)).sum())
    rng = np.random.default_rng(seed)
    p = 1.0 if len(names) < 2 else _tv_permutation_p(ref_codes, win_codes, len(names), tv, bootstrap, rng)
    resampled = []
    for _ in range(bootstrap):
        rc = np.bincount(ref_codes[rng.integers(0, len(ref_codes), len(ref_codes))], minlength=len(names))
        wc = np.bincount(win_codes[rng.integers(0, len(win_codes), len(win_codes))], minlength=len(names))
        resampled.append(0.5 * np.abs(rc / len(ref_codes) - wc / len(win_codes)).sum())
    low, high = np.percentile(resampled, [100 * (1 - LEVEL) / 2, 100 * (1 + LEVEL) / 2])
    return tv, float(low), float(high), p


def _tv_permutation_p(
    ref_codes: np.ndarray, win_codes: np.ndarray, k: int, observed: float, permutations: int, rng: np.random.Generator
) -> float:
    """Permutation p-value of a total-variation distance between label distributions.

    Permuted rather than a chi-square test: with many labels each seen a few times, the chi-square's expected counts
    fall below 5 and its p-value is unreliable. (A max-type statistic, the largest per-label change, was tried: rare
    labels, seen once or twice, dominate its null distribution, and it lost power in both drift cases measured.)
    """
    pooled = np.concatenate([ref_codes, win_codes])
    n_ref = len(ref_codes)
    hits = 0
    for _ in range(permutations):
        shuffled = rng.permutation(pooled)
        a = np.bincount(shuffled[:n_ref], minlength=k) / n_ref
        b = np.bincount(shuffled[n_ref:], minlength=k) / (len(pooled) - n_ref)
        hits += 0.5 * float(np.abs(a - b).sum()) >= observed - 1e-12
    return (1 + hits) / (1 + permutations)


def novel_share(
    reference: np.ndarray, window: np.ndarray, *, quantile: float = 0.95
) -> tuple[int, int, int, int, float]:
    """How many window inputs are farther from every reference input than the reference's own inputs usually are.

    The distance is ``1 - cos`` to the nearest reference input; the reference's own distances are leave-one-out (each
    reference input to its nearest other), and the cut is their ``quantile``. Under no drift a window input is as
    likely to cross the cut as a reference input is (``1 - quantile``); a new kind of input crosses it far more often.
    Unlike the domain classifier's AUC, which a small novel share dilutes (a quarter of the traffic perfectly told
    apart gives an AUC near 0.62), the share measures the novel part directly.

    Returns:
        ``(novel in window, window size, novel in reference, reference size, cut)``.
    """
    own = leave_one_out_distances(reference)
    cut = float(np.quantile(own, quantile))
    distances = nearest_cosine_distance(window, reference)
    return int((distances > cut).sum()), len(window), int((own > cut).sum()), len(own), cut


def leave_one_out_distances(reference: np.ndarray) -> np.ndarray:
    """For each reference row, ``1 - cos`` to its nearest other reference row (rows unit-normalised here)."""
    r = reference / np.maximum(np.linalg.norm(reference, axis=1, keepdims=True), 1e-12)
    similarity = r @ r.T
    np.fill_diagonal(similarity, -np.inf)
    return 1.0 - similarity.max(axis=1)


def mean_difference_ci(
    reference: np.ndarray, window: np.ndarray, *, bootstrap: int = 1000, seed: int = 0
) -> tuple[float, float, float]:
    """``mean(window) - mean(reference)`` with a 95% bootstrap CI (both sides resampled)."""
    reference, window = np.asarray(reference, dtype=np.float64), np.asarray(window, dtype=np.float64)
    value = float(window.mean() - reference.mean())
    rng = np.random.default_rng(seed)
    r = reference[rng.integers(0, len(reference), (bootstrap, len(reference)))].mean(axis=1)
    w = window[rng.integers(0, len(window), (bootstrap, len(window)))].mean(axis=1)
    low, high = np.percentile(w - r, [100 * (1 - LEVEL) / 2, 100 * (1 + LEVEL) / 2])
    return value, float(low), float(high)


def nearest_cosine_distance(window: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """For each window row, ``1 - cos`` to its nearest reference row (rows unit-normalised here)."""
    w = window / np.maximum(np.linalg.norm(window, axis=1, keepdims=True), 1e-12)
    r = reference / np.maximum(np.linalg.norm(reference, axis=1, keepdims=True), 1e-12)
    return 1.0 - (w @ r.T).max(axis=1)


def pca_2d(points: np.ndarray) -> np.ndarray:
    """The first two principal components of ``points`` (numpy SVD on the centred rows)."""
    centred = points - points.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    return centred @ vt[:2].T
