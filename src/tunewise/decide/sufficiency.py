"""Data sufficiency: fit a learning curve to (train size, metric) points and extrapolate the size for a target.

The model is the inverse power law ``acc(n) = a - b * n**(-c)`` (Figueroa et al. 2012; Hestness et al. 2017),
bounded to ``0 <= a <= 1``, ``b >= 0``, ``0.05 <= c <= 2``. Uncertainty comes from a parametric bootstrap: each
point is redrawn from its binomial-style standard error, the curve refitted, and the needed size recomputed.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tunewise.records import Record

C_BOUNDS = (0.05, 2.0)
ASSUMED_C = 0.5
"""With only two points the exponent cannot be fitted; 0.5 is the median exponent reported for classifiers."""
MAX_N = 10**7


@dataclass(frozen=True)
class CurveFit(Record):
    """The fitted ``a - b * n**(-c)``; ``c_assumed`` when only two points left the exponent at :data:`ASSUMED_C`."""

    a: float
    b: float
    c: float
    c_assumed: bool

    def predict(self, n: float | np.ndarray) -> Any:
        return self.a - self.b * np.power(n, -self.c)

    def n_for(self, target: float) -> float:
        """The train size at which the curve reaches ``target`` (``inf`` if its asymptote is below it)."""
        if self.b <= 0:
            return 1.0 if self.a >= target else math.inf
        if self.a <= target:
            return math.inf
        return float((self.b / (self.a - target)) ** (1.0 / self.c))


@dataclass(frozen=True, kw_only=True)
class SufficiencyEstimate(Record):
    """The extrapolated number of labelled examples needed to reach ``target``, with its uncertainty.

    ``status`` is one of:

    - ``ok``: the curve rises and its fit reaches the target at ``n_needed`` examples
      (80% interval ``n_low``..``n_high``);
    - ``reached``: the largest probe run already meets the target; ``n_needed`` is the first size that did;
    - ``flat``: no measurable learning — the last point is not above the first by more than two standard errors of
      their difference, so there is no curve to extrapolate (usually the probe's training budget is too small);
      ``n_needed`` is ``None``;
    - ``unreachable``: the curve does rise, but its fitted asymptote lies below the target, and fewer than
      :data:`MIN_P_UNREACHABLE` of the bootstrap refits reach it; ``n_needed`` is ``None``;
    - ``uncertain``: the fitted asymptote lies below the target but many refits reach it: the points cannot tell;
    - ``unknown``: fewer than two usable points (too small a train split, training unavailable or failed).
    """

    status: str
    """``ok``, ``reached``, ``flat``, ``unreachable``, ``uncertain`` or ``unknown`` (see the class docstring)."""
    reason: str
    target: float
    sizes: list[int] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    fit: CurveFit | None = None
    n_needed: float | None = None
    n_low: float | None = None
    n_high: float | None = None
    p_reachable: float | None = None
    """Share of bootstrap refits whose asymptote exceeds the target."""
    capped_sizes: list[int] = field(default_factory=list)
    """Sizes whose runs ``max_steps`` cut short of ``epochs`` passes: they were trained less than the smaller sizes."""
    train_size: int | None = None
    """The whole train split the probe drew its subsets from (set by the probe; ``None`` for a bare estimate)."""
    predicted_at_train_size: float | None = None
    """The fitted curve's value at ``train_size``: what training on all of it should reach."""


def fit_curve(sizes: Sequence[float], values: Sequence[float], weights: Sequence[float] | None = None) -> CurveFit:
    """Least-squares fit of ``a - b * n**(-c)``; with two points the exponent is fixed at :data:`ASSUMED_C`.

    Raises:
        ValueError: fewer than two points, or sizes that are not positive.
    """
    from scipy.optimize import curve_fit

    n = np.asarray(sizes, dtype=float)
    y = np.asarray(values, dtype=float)
    if len(n) < 2 or len(n) != len(y):
        raise ValueError("a learning curve needs at least two (size, value) points")
    if np.any(n <= 0):
        raise ValueError("train sizes must be positive")
    sigma = None if weights is None else np.asarray(weights, dtype=float)
    if len(n) == 2:
        # Two points, two unknowns with c fixed: solve exactly, then clip into the bounds.
        x = n ** (-ASSUMED_C)
        b = (y[1] - y[0]) / (x[0] - x[1]) if x[0] != x[1] else 0.0
        b = max(b, 0.0)
        a = float(np.clip(y[1] + b * x[1], 0.0, 1.0))
        return CurveFit(a, float(b), ASSUMED_C, True)
    start = (min(1.0, float(y.max()) + 0.05), max(1e-3, float(y.max() - y.min())) * float(n.min()) ** 0.5, 0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        params, _ = curve_fit(
            lambda t, a, b, c: a - b * np.power(t, -c),
            n,
            y,
            p0=start,
            sigma=sigma,
            bounds=([0.0, 0.0, C_BOUNDS[0]], [1.0, np.inf, C_BOUNDS[1]]),
            maxfev=20000,
        )
    return CurveFit(float(params[0]), float(params[1]), float(params[2]), False)


MIN_P_UNREACHABLE = 0.2
"""A curve whose fit levels off below the target is called unreachable only if fewer refits than this reach it."""
FLAT_Z = 2.0
"""A curve whose last point is not above its first by more than this many standard errors (of the difference)
is flat."""


def _capped_note(capped: Sequence[int]) -> str:
    if not capped:
        return ""
    return (
        f"; note: the runs at n={', '.join(str(c) for c in capped)} were cut short by decide.sufficiency.max_steps "
        "(fewer than decide.sufficiency.epochs passes), so the larger sizes were trained less than the smaller ones "
        "and the curve understates what more data gives"
    )


def estimate_needed(
    sizes: Sequence[int],
    values: Sequence[float],
    target: float,
    *,
    eval_n: int | Sequence[int] = 32,
    samples: int = 400,
    seed: int = 0,
    capped_sizes: Sequence[int] = (),
    rise_se: float | None = None,
) -> SufficiencyEstimate:
    """Extrapolate how many labelled examples reach ``target``, with an 80% interval from a parametric bootstrap.

    Args:
        sizes: train sizes of the probe runs (increasing).
        values: the task metric each run reached (0..1).
        target: the threshold to reach.
        eval_n: examples each value was measured on (sets its standard error ``sqrt(max(p(1-p), 0.25/n)/n)``).
        samples: bootstrap refits.
        capped_sizes: sizes whose runs ``max_steps`` cut short of the configured epochs; named in the reason.
        rise_se: the standard error of ``values[-1] - values[0]`` from paired per-example differences (both runs
            scored on the same examples); default: two independent binomial errors, much wider.

    Returns:
        A :class:`SufficiencyEstimate`; ``status="unknown"`` with the reason when there are too few points, and
        ``status="flat"`` (no extrapolation) when the last point is not measurably above the first.
    """
    sizes, values = list(sizes), [float(v) for v in values]
    capped = sorted(int(c) for c in capped_sizes if c in sizes)
    if len(sizes) < 2:
        reason = f"{len(sizes)} learning-curve point(s): at least two are needed"
        return SufficiencyEstimate(
            status="unknown", reason=reason, target=target, sizes=sizes, values=values, capped_sizes=capped
        )
    if values[-1] >= target:
        first_reaching = next(size for size, value in zip(sizes, values, strict=False) if value >= target)
        return SufficiencyEstimate(
            status="reached",
            reason=f"{sizes[-1]} examples already reach {values[-1]:.3f} >= {target}",
            target=target,
            sizes=sizes,
            values=values,
            n_needed=float(first_reaching),
            capped_sizes=capped,
        )
    counts = [eval_n] * len(sizes) if isinstance(eval_n, int) else list(eval_n)
    se = np.array([math.sqrt(max(v * (1 - v), 0.25 / n) / n) for v, n in zip(values, counts, strict=False)])
    rise, paired = values[-1] - values[0], rise_se is not None
    rise_se = rise_se if rise_se is not None else math.hypot(se[0], se[-1])
    if rise <= FLAT_Z * rise_se:
        reason = (
            f"no measurable learning between n={sizes[0]} ({values[0]:.3f}) and n={sizes[-1]} ({values[-1]:.3f}): "
            f"a change of {rise:+.3f} is within {FLAT_Z:g} {'paired ' if paired else ''}standard errors "
            f"(±{FLAT_Z * rise_se:.3f}), so the probe runs "
            "did not learn enough to extrapolate from — this says nothing about how much data the task needs; raise "
            "decide.sufficiency.max_steps or decide.sufficiency.epochs (more training per run), use larger "
            "decide.sufficiency.subsets, or raise decide.sufficiency.eval_examples (less noise per point)"
        )
        return SufficiencyEstimate(
            status="flat",
            reason=reason + _capped_note(capped),
            target=target,
            sizes=sizes,
            values=values,
            capped_sizes=capped,
        )
    fit = fit_curve(sizes, values, se if len(sizes) > 2 else None)
    rng = np.random.default_rng(seed)
    needed = []
    for _ in range(samples):
        redrawn = np.clip(np.asarray(values) + rng.normal(0.0, se), 0.0, 1.0)
        try:
            needed.append(fit_curve(sizes, redrawn, se if len(sizes) > 2 else None).n_for(target))
        except (ValueError, RuntimeError):
            continue
    draws = np.asarray(needed, dtype=float)
    p_reachable = float(np.mean(np.isfinite(draws))) if len(draws) else 0.0
    finite = np.minimum(draws, MAX_N)
    n_low, n_high = (float(np.percentile(finite, 10)), float(np.percentile(finite, 90))) if len(draws) else (None, None)
    central = fit.n_for(target)
    assumed = f" (exponent assumed {ASSUMED_C}: only two points)" if fit.c_assumed else ""
    if not math.isfinite(central):
        reason = f"the fitted curve rises but levels off at {fit.a:.3f}, below the target {target}{assumed}"
        status = "unreachable"
        if p_reachable >= MIN_P_UNREACHABLE:
            status = "uncertain"
            reason += (
                f"; yet {p_reachable:.0%} of the bootstrap refits do reach it, so the points cannot tell: "
                "more or longer probe runs would settle it (decide.sufficiency.subsets, eval_examples)"
            )
        return SufficiencyEstimate(
            status=status,
            reason=reason + _capped_note(capped),
            target=target,
            sizes=sizes,
            values=values,
            fit=fit,
            n_low=n_low,
            n_high=n_high,
            p_reachable=p_reachable,
            capped_sizes=capped,
        )
    reason = f"the fitted curve reaches {target} at about {central:,.0f} examples{assumed}"
    if capped:
        reason += (
            f"; n={', '.join(str(c) for c in capped)} were cut short by decide.sufficiency.max_steps, "
            "so this estimate leans high"
        )
    return SufficiencyEstimate(
        status="ok",
        reason=reason,
        target=target,
        sizes=sizes,
        values=values,
        fit=fit,
        n_needed=min(central, MAX_N),
        n_low=n_low,
        n_high=n_high,
        p_reachable=p_reachable,
        capped_sizes=capped,
    )
