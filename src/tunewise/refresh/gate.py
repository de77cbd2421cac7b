"""The gate a challenger must pass to replace the champion: two paired tests on the same examples.

- **Golden set, non-inferiority.** The challenger may be worse by at most ``margin``: it passes when the lower bound
  of the paired 95% bootstrap CI of (challenger - champion) is above ``-margin``. The one-sided p-value of
  H0: diff <= -margin is the share of the same bootstrap resamples at or below ``-margin`` (it is below 0.025
  exactly when the CI's lower bound clears the margin).
- **New slice, superiority.** The challenger must be better: diff > 0 with the paired test's p < ``alpha`` (exact
  McNemar for 0/1 per-example values, a sign-flip permutation test otherwise, a paired bootstrap for a metric that is
  no mean of per-example values, such as macro F1).

Both sides are the metric's :data:`~tunewise.metrics.stats.Statistic` over per-example weights, so every task metric
is tested the same way, micro averages and macro F1 included.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from tunewise.metrics.stats import (
    LEVEL,
    Statistic,
    mean_statistic,
    paired_bootstrap_compare,
    paired_compare,
    resample_counts,
)
from tunewise.records import Record

Values = np.ndarray | Statistic
"""Per-example values whose mean is the metric, or the metric as a statistic of resampling weights."""


@dataclass(frozen=True, kw_only=True)
class GateTest(Record):
    """One paired test of the gate, with everything needed to check it."""

    kind: Literal["non_inferiority", "superiority"]
    examples: str
    """``golden`` or ``new``."""
    metric: str
    n: int
    champion: float
    challenger: float
    diff: float
    """Challenger minus champion."""
    ci_low: float
    ci_high: float
    p_value: float
    """Non-inferiority: one-sided, H0 diff <= -margin. Superiority: two-sided, H0 diff = 0."""
    test: str
    alpha: float
    margin: float | None = None
    passed: bool
    reason: str


def _statistic(values: Values) -> Statistic:
    return values if callable(values) else mean_statistic(np.asarray(values, dtype=np.float64))


def _point(statistic: Statistic, n: int) -> float:
    return float(statistic(np.ones((1, n)))[0])


def non_inferiority(
    champion: Values,
    challenger: Values,
    n: int,
    *,
    margin: float,
    metric: str,
    examples: str = "golden",
    alpha: float = 1 - LEVEL,
    samples: int = 1000,
    seed: int = 0,
) -> GateTest:
    """Is the challenger at most ``margin`` worse than the champion on the same ``n`` examples?

    Passes when the paired bootstrap 95% CI's lower bound of the difference is above ``-margin``.

    Raises:
        ValueError: no examples.
    """
    if n == 0:
        raise ValueError("cannot test non-inferiority on zero examples")
    a, b = _statistic(champion), _statistic(challenger)
    deltas = np.concatenate([b(w) - a(w) for w in resample_counts(n, samples, seed)])
    low, high = np.percentile(deltas, [100 * (1 - LEVEL) / 2, 100 * (1 + LEVEL) / 2])
    champion_value, challenger_value = _point(a, n), _point(b, n)
    diff = challenger_value - champion_value
    p = (1 + int(np.sum(deltas <= -margin))) / (1 + samples)
    passed = bool(low > -margin)
    reason = (
        f"non-inferior: the 95% CI of the difference [{low:+.3f}, {high:+.3f}] stays above -{margin:g}"
        if passed
        else f"possibly worse by more than the margin: the 95% CI [{low:+.3f}, {high:+.3f}] reaches -{margin:g}"
    )
    return GateTest(
        kind="non_inferiority",
        examples=examples,
        metric=metric,
        n=n,
        champion=champion_value,
        challenger=challenger_value,
        diff=diff,
        ci_low=float(low),
        ci_high=float(high),
        p_value=min(p, 1.0),
        test="paired_bootstrap_one_sided",
        alpha=alpha,
        margin=margin,
        passed=passed,
        reason=reason,
    )


def superiority(
    champion: Values,
    challenger: Values,
    n: int,
    *,
    alpha: float,
    metric: str,
    examples: str = "new",
    samples: int = 1000,
    seed: int = 0,
) -> GateTest:
    """Is the challenger significantly better than the champion on the same ``n`` examples?

    Raises:
        ValueError: no examples.
    """
    if n == 0:
        raise ValueError("cannot test superiority on zero examples")
    if callable(champion) or callable(challenger):
        compared = paired_bootstrap_compare(
            metric,
            "champion",
            "challenger",
            _statistic(champion),
            _statistic(challenger),
            n,
            samples=samples,
            seed=seed,
        )
    else:
        compared = paired_compare(metric, "champion", "challenger", champion, challenger, samples=samples, seed=seed)
    champion_value = _point(_statistic(champion), n)
    passed = compared.diff > 0 and compared.p_value < alpha
    if passed:
        reason = f"better: {compared.diff:+.3f} with p={compared.p_value:.3g} < {alpha:g} ({compared.test})"
    elif compared.diff <= 0:
        reason = f"not better: the difference is {compared.diff:+.3f}"
    else:
        reason = f"not significantly better: {compared.diff:+.3f} with p={compared.p_value:.3g} >= {alpha:g}"
    return GateTest(
        kind="superiority",
        examples=examples,
        metric=metric,
        n=n,
        champion=champion_value,
        challenger=champion_value + compared.diff,
        diff=compared.diff,
        ci_low=compared.ci_low,
        ci_high=compared.ci_high,
        p_value=compared.p_value,
        test=compared.test,
        alpha=alpha,
        passed=passed,
        reason=reason,
    )


def verdict(golden: GateTest, new: GateTest) -> tuple[bool, str]:
    """``(promote, why)``: both tests must pass."""
    if golden.passed and new.passed:
        return True, f"promoted: {new.reason} on the new slice, and {golden.reason} on the golden set"
    failed = [f"golden set: {golden.reason}"] * (not golden.passed) + [f"new slice: {new.reason}"] * (not new.passed)
    return False, "kept the champion: " + "; ".join(failed)
