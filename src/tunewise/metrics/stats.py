"""Bootstrap confidence intervals and paired significance tests, vectorised with numpy.

Every statistic is written as a function of per-example *weights*: a ``(B, n)`` matrix whose row ``r`` says how
many times each example appears in resample ``r``. The point estimate is the statistic at weights 1; the percentile
bootstrap evaluates it at multinomial resampling counts. One formulation covers means, ratios of sums (micro
averages) and macro F1, and the paired test reuses the same resamples for both candidates.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
from scipy.stats import binomtest

from tunewise.records import MetricValue, PairedComparison

Statistic = Callable[[np.ndarray], np.ndarray]
"""Weights ``(B, n)`` -> one value per row ``(B,)``."""

LEVEL = 0.95
_CELLS_PER_CHUNK = 4_000_000  # keeps a chunk of resampling counts around 32 MB for any n


def resample_counts(n: int, samples: int, seed: int) -> Iterator[np.ndarray]:
    """Bootstrap resampling counts, ``samples`` rows of ``n`` counts summing to ``n``, yielded in chunks.

    Deterministic for a seed: the same ``(n, samples, seed)`` always yields the same rows, whatever the chunking.
    """
    rng = np.random.default_rng(seed)
    rows = max(1, _CELLS_PER_CHUNK // max(n, 1))
    done = 0
    while done < samples:
        size = min(rows, samples - done)
        picks = rng.integers(0, n, size=(size, n))
        offsets = (np.arange(size) * n)[:, None]
        yield np.bincount((picks + offsets).ravel(), minlength=size * n).reshape(size, n).astype(np.float64)
        done += size


def bootstrap_distribution(statistic: Statistic, n: int, *, samples: int = 1000, seed: int = 0) -> np.ndarray:
    """The statistic on each of ``samples`` bootstrap resamples of ``n`` examples."""
    return np.concatenate([statistic(counts) for counts in resample_counts(n, samples, seed)])


def bootstrap_metric(statistic: Statistic, n: int, *, samples: int = 1000, seed: int = 0) -> MetricValue:
    """Point estimate with a 95% percentile bootstrap interval.

    Raises:
        ValueError: no examples.
    """
    if n == 0:
        raise ValueError("cannot compute a metric over zero examples")
    value = float(statistic(np.ones((1, n)))[0])
    distribution = bootstrap_distribution(statistic, n, samples=samples, seed=seed)
    low, high = np.percentile(distribution, [100 * (1 - LEVEL) / 2, 100 * (1 + LEVEL) / 2])
    return MetricValue(value=value, ci_low=float(low), ci_high=float(high), n=n)


def mean_statistic(values: np.ndarray) -> Statistic:
    """The (weighted) mean of per-example values."""
    values = np.asarray(values, dtype=np.float64)
    return lambda w: (w @ values) / w.sum(axis=1)


def ratio_statistic(numerator: np.ndarray, denominator: np.ndarray, *, empty: float = 1.0) -> Statistic:
    """``sum(numerator) / sum(denominator)`` over the resample (a micro average); ``empty`` when the sum is 0."""
    num, den = np.asarray(numerator, dtype=np.float64), np.asarray(denominator, dtype=np.float64)

    def statistic(w: np.ndarray) -> np.ndarray:
        top, bottom = w @ num, w @ den
        return np.divide(top, bottom, out=np.full(top.shape, empty), where=bottom > 0)

    return statistic


def mean_ci(values: np.ndarray, *, samples: int = 1000, seed: int = 0) -> MetricValue:
    """The mean of per-example values with its 95% bootstrap interval."""
    values = np.asarray(values, dtype=np.float64)
    return bootstrap_metric(mean_statistic(values), len(values), samples=samples, seed=seed)


def is_binary(values: np.ndarray) -> bool:
    """Every value is 0 or 1."""
    return bool(np.all((values == 0) | (values == 1)))


def mcnemar_exact(values_a: np.ndarray, values_b: np.ndarray) -> tuple[int, int, float]:
    """Exact McNemar test on paired 0/1 outcomes.

    Returns:
        ``(a_only, b_only, p)``: examples only ``a`` got right, only ``b`` got right, and the two-sided binomial
        p-value of ``b_only`` out of the discordant pairs under p = 1/2 (1.0 when there are none).
    """
    a, b = np.asarray(values_a) == 1, np.asarray(values_b) == 1
    a_only, b_only = int(np.sum(a & ~b)), int(np.sum(~a & b))
    discordant = a_only + b_only
    p = 1.0 if discordant == 0 else float(binomtest(b_only, discordant, 0.5).pvalue)
    return a_only, b_only, min(p, 1.0)


def sign_flip_pvalue(differences: np.ndarray, *, samples: int = 10000, seed: int = 0) -> tuple[float, bool]:
    """Two-sided sign-flip permutation p-value of ``mean(differences) == 0`` for paired differences.

    Exact (all ``2**k`` sign patterns of the ``k`` non-zero differences) when ``k <= 16``; otherwise Monte Carlo
    with ``samples`` random patterns and the ``(1 + hits) / (1 + samples)`` correction.

    Returns:
        ``(p, exact)``.
    """
    d = np.asarray(differences, dtype=np.float64)
    d = d[d != 0]
    if d.size == 0:
        return 1.0, True
    # A tolerance so that sign patterns equal to the observed sum up to rounding count as extreme.
    observed = abs(d.sum()) - 1e-9 * np.abs(d).sum()
    if d.size <= 16:
        patterns = ((np.arange(2**d.size)[:, None] >> np.arange(d.size)) & 1) * 2 - 1
        return float(np.mean(np.abs(patterns @ d) >= observed)), True
    rng = np.random.default_rng(seed)
    hits = 0
    for start in range(0, samples, 1000):
        signs = rng.integers(0, 2, size=(min(1000, samples - start), d.size)) * 2 - 1
        hits += int(np.sum(np.abs(signs @ d) >= observed))
    return (1 + hits) / (1 + samples), False


def paired_compare(
    metric: str,
    a: str,
    b: str,
    values_a: np.ndarray,
    values_b: np.ndarray,
    *,
    samples: int = 1000,
    seed: int = 0,
) -> PairedComparison:
    """Candidate ``b`` minus candidate ``a`` on the same examples.

    The difference of means gets a paired percentile bootstrap CI (the same resamples for both). The p-value comes
    from the exact McNemar test when both value arrays are 0/1 (``test="mcnemar_exact"``), otherwise from a
    sign-flip permutation test on the per-example differences (``"sign_flip_exact"`` or ``"sign_flip_mc"``, with
    ``10 * samples`` random patterns).

    Raises:
        ValueError: arrays of different lengths, or empty.
    """
    va, vb = np.asarray(values_a, dtype=np.float64), np.asarray(values_b, dtype=np.float64)
    if va.shape != vb.shape or va.ndim != 1:
        raise ValueError(f"paired values must be two 1-d arrays of one length, got {va.shape} and {vb.shape}")
    if va.size == 0:
        raise ValueError("cannot compare candidates on zero examples")
    differences = vb - va
    interval = mean_ci(differences, samples=samples, seed=seed)
    if is_binary(va) and is_binary(vb):
        _, _, p = mcnemar_exact(va, vb)
        test = "mcnemar_exact"
    else:
        p, exact = sign_flip_pvalue(differences, samples=10 * samples, seed=seed)
        test = "sign_flip_exact" if exact else "sign_flip_mc"
    return PairedComparison(
        metric=metric,
        a=a,
        b=b,
        diff=interval.value,
        ci_low=interval.ci_low,
        ci_high=interval.ci_high,
        p_value=p,
        test=test,
        n=int(va.size),
    )


def paired_bootstrap_compare(
    metric: str,
    a: str,
    b: str,
    statistic_a: Statistic,
    statistic_b: Statistic,
    n: int,
    *,
    samples: int = 1000,
    seed: int = 0,
) -> PairedComparison:
    """``b`` minus ``a`` for any statistic (e.g. macro F1, which is no mean of per-example values).

    Both statistics are evaluated on the same resamples; the p-value is the two-sided percentile bootstrap one,
    ``min(1, 2 * min(P(diff <= 0), P(diff >= 0)))`` (``test="paired_bootstrap"``).
    """
    if n == 0:
        raise ValueError("cannot compare candidates on zero examples")
    ones = np.ones((1, n))
    diff = float(statistic_b(ones)[0] - statistic_a(ones)[0])
    deltas = np.concatenate([statistic_b(w) - statistic_a(w) for w in resample_counts(n, samples, seed)])
    low, high = np.percentile(deltas, [100 * (1 - LEVEL) / 2, 100 * (1 + LEVEL) / 2])
    p = min(1.0, 2 * min(float(np.mean(deltas <= 0)), float(np.mean(deltas >= 0))))
    return PairedComparison(
        metric=metric,
        a=a,
        b=b,
        diff=diff,
        ci_low=float(low),
        ci_high=float(high),
        p_value=p,
        test="paired_bootstrap",
        n=n,
    )
