"""Per-conversation scores by turn -> curves with CIs, each turn tested against turn 1, and candidates compared."""

from __future__ import annotations

import numpy as np

from tunewise.metrics.stats import mean_ci, paired_compare
from tunewise.persona.record import Curve, Direction, TurnPoint
from tunewise.records import PairedComparison

DIRECTIONS: dict[str, Direction] = {
    "identifiability": "higher",
    "identifiability_rank": "higher",
    "fact_f1": "higher",
    "contradiction": "lower",
    "words": "either",
    "uppercase": "either",
}
"""The metrics of a curve, in report order, and which way is better."""


def build_curve(metric: str, scores: np.ndarray, turns: list[int], *, margin: float, samples: int, seed: int) -> Curve:
    """``scores``: ``(conversations, len(turns))``; column ``j`` is turn ``turns[j]``."""
    direction = DIRECTIONS[metric]
    points = [TurnPoint(turn, mean_ci(scores[:, j], samples=samples, seed=seed)) for j, turn in enumerate(turns)]
    against: list[PairedComparison] = []
    drift_turn: int | None = None
    holds: dict[str, bool] = {}
    for j, turn in enumerate(turns[1:], start=1):
        c = paired_compare(
            metric, f"turn {turns[0]}", f"turn {turn}", scores[:, 0], scores[:, j], samples=samples, seed=seed
        )
        against.append(c)
        worse = {"higher": c.ci_high < 0, "lower": c.ci_low > 0, "either": c.ci_high < 0 or c.ci_low > 0}[direction]
        if worse and drift_turn is None:
            drift_turn = turn
        if direction == "higher":
            holds[str(turn)] = c.ci_low > -margin
        elif direction == "lower":
            holds[str(turn)] = c.ci_high < margin
    return Curve(metric, direction, points, against, drift_turn, holds)


def compare_candidates(
    metric: str, names: list[str], scores: list[np.ndarray], turns: list[int], *, samples: int, seed: int
) -> list[PairedComparison]:
    """Each later candidate minus the first, at every turn, paired over conversations."""
    out = []
    for name, values in zip(names[1:], scores[1:], strict=True):
        for j, turn in enumerate(turns):
            c = paired_compare(
                f"{metric}@{turn}", names[0], name, scores[0][:, j], values[:, j], samples=samples, seed=seed
            )
            out.append(c)
    return out
