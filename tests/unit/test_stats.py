"""Bootstrap intervals and paired tests: determinism, coverage of the estimate, hand-computed p-values."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binomtest

from tunewise.metrics import mcnemar_exact, mean_ci, paired_compare
from tunewise.metrics.classify import macro_f1_from_counts
from tunewise.metrics.stats import (
    bootstrap_metric,
    paired_bootstrap_compare,
    ratio_statistic,
    resample_counts,
    sign_flip_pvalue,
)


def test_resample_counts_are_deterministic_and_sum_to_n() -> None:
    first = np.concatenate(list(resample_counts(7, 50, seed=3)))
    again = np.concatenate(list(resample_counts(7, 50, seed=3)))
    other = np.concatenate(list(resample_counts(7, 50, seed=4)))
    assert first.shape == (50, 7)
    assert np.array_equal(first, again) and not np.array_equal(first, other)
    assert np.all(first.sum(axis=1) == 7)


def test_mean_ci_contains_estimate_deterministic_and_right_width() -> None:
    values = np.array([1.0] * 200 + [0.0] * 200)
    ci = mean_ci(values, samples=1000, seed=5)
    assert ci.value == 0.5 and ci.n == 400
    assert ci.ci_low < 0.5 < ci.ci_high
    assert mean_ci(values, samples=1000, seed=5) == ci
    assert mean_ci(values, samples=1000, seed=6) != ci
    # normal approximation: 2 * 1.96 * sqrt(0.25 / 400) = 0.098
    assert ci.ci_high - ci.ci_low == pytest.approx(0.098, abs=0.015)


def test_ratio_ci_is_micro_average() -> None:
    correct, total = np.array([4.0, 2.0, 0.0, 4.0]), np.array([4.0, 4.0, 4.0, 4.0])
    ci = bootstrap_metric(ratio_statistic(correct, total), 4, samples=500, seed=0)
    assert ci.value == pytest.approx(0.625)
    # a resample is the mean of 4 draws from {1, 0.5, 0, 1}: its exact 2.5% and 97.5% percentiles are 0.25 and 1
    assert (ci.ci_low, ci.ci_high) == (0.25, 1.0)
    # unequal denominators: the micro average 14 / 20, not the mean of the ratios (1 + 0.5 + 0 + 1) / 4
    weighted = bootstrap_metric(ratio_statistic(np.array([4.0, 2.0, 0.0, 8.0]), np.array([4.0, 4.0, 4.0, 8.0])), 4)
    assert weighted.value == pytest.approx(0.7)


def test_mcnemar_matches_hand_computed_binomial() -> None:
    # 2 concordant, a right only once, b right only 7 times: p = 2 * P(X >= 7 | n=8, 1/2) = 2 * 9/256
    a = np.array([1, 1, 1, 0, 0, 0, 0, 0, 0, 0])
    b = np.array([1, 1, 0, 1, 1, 1, 1, 1, 1, 1])
    a_only, b_only, p = mcnemar_exact(a, b)
    assert (a_only, b_only) == (1, 7)
    assert p == pytest.approx(18 / 256)
    assert p == pytest.approx(binomtest(7, 8, 0.5).pvalue)
    cmp = paired_compare("accuracy", "base", "tuned", a, b, samples=500)
    assert cmp.test == "mcnemar_exact" and cmp.p_value == pytest.approx(18 / 256)
    assert cmp.diff == pytest.approx(0.6) and cmp.n == 10
    assert cmp.ci_low <= 0.6 <= cmp.ci_high


def test_identical_candidates_p_is_one() -> None:
    rng = np.random.default_rng(0)
    binary = (rng.random(100) < 0.6).astype(float)
    cmp = paired_compare("accuracy", "a", "b", binary, binary.copy())
    assert (cmp.diff, cmp.ci_low, cmp.ci_high, cmp.p_value) == (0.0, 0.0, 0.0, 1.0)
    scores = rng.random(100)
    cont = paired_compare("rouge_l", "a", "b", scores, scores.copy())
    assert cont.p_value == 1.0 and cont.test == "sign_flip_exact"


def test_clear_difference_has_small_p_and_ci_excluding_zero() -> None:
    rng = np.random.default_rng(1)
    a = rng.random(200) * 0.5
    b = a + 0.2 + rng.normal(0, 0.05, 200)
    cmp = paired_compare("rouge_l", "a", "b", a, b, samples=1000, seed=0)
    assert cmp.test == "sign_flip_mc"
    assert cmp.p_value < 0.001
    assert 0.18 < cmp.ci_low < cmp.diff < cmp.ci_high < 0.22
    binary_a = np.zeros(100)
    binary_b = np.r_[np.ones(40), np.zeros(60)]
    assert paired_compare("accuracy", "a", "b", binary_a, binary_b).p_value == pytest.approx(2 * 0.5**40)


def test_sign_flip_exact_hand_computed() -> None:
    # +-1 +-2 +-3: |sum| >= 6 for 2 of 8 patterns
    assert sign_flip_pvalue(np.array([1.0, 2.0, 3.0, 0.0])) == (0.25, True)
    p, exact = sign_flip_pvalue(np.ones(30), samples=2000, seed=0)
    assert not exact and p == pytest.approx(1 / 2001)


def test_paired_inputs_validated() -> None:
    with pytest.raises(ValueError, match="one length"):
        paired_compare("m", "a", "b", np.ones(3), np.ones(4))
    with pytest.raises(ValueError, match="zero examples"):
        paired_compare("m", "a", "b", np.ones(0), np.ones(0))


def test_paired_bootstrap_for_macro_f1() -> None:
    tp = np.eye(3)[[0, 1, 2, 0, 1, 2]]
    zero = np.zeros_like(tp)
    stat = lambda w: macro_f1_from_counts(w @ tp, w @ zero, w @ zero)  # noqa: E731
    worse = lambda w: macro_f1_from_counts(w @ (tp * 0), w @ zero, w @ tp)  # noqa: E731
    same = paired_bootstrap_compare("macro_f1", "a", "b", stat, stat, 6, samples=200)
    assert same.p_value == 1.0 and same.diff == 0.0
    diff = paired_bootstrap_compare("macro_f1", "a", "b", stat, worse, 6, samples=200)
    assert diff.diff == -1.0 and diff.p_value == 0.0


def test_bootstrap_evaluates_the_statistic_on_whole_chunks_of_resamples() -> None:
    """Vectorised: at eval scale one call covers all 1000 resamples; a larger n splits them into bounded chunks."""
    shapes: list[tuple[int, int]] = []

    def mean(weights: np.ndarray) -> np.ndarray:
        shapes.append(weights.shape)
        return weights.mean(axis=1)

    bootstrap_metric(mean, 1000, samples=1000, seed=0)
    assert shapes == [(1, 1000), (1000, 1000)]  # the point estimate, then every resample at once
    shapes.clear()
    bootstrap_metric(mean, 10_000, samples=1000, seed=0)
    point, *chunks = shapes
    assert point == (1, 10_000) and len(chunks) > 1 and sum(rows for rows, _ in chunks) == 1000
    assert all(rows * n <= 4_000_000 for rows, n in chunks)  # bounded memory: about 32 MB of counts a chunk
