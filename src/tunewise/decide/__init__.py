"""decide: the fine-tuning decision tree answered by measurements, with cost and ROI."""

from __future__ import annotations

from typing import Any

from tunewise.decide.config import DecideSpec, check_targets
from tunewise.decide.record import Decision, Evidence, NodeAnswer, ProbeRecord
from tunewise.decide.sufficiency import estimate_needed, fit_curve
from tunewise.decide.tree import ACTIONS, TREE, walk

__all__ = [
    "ACTIONS", "TREE", "DecideSpec", "Decision", "Evidence", "NodeAnswer", "ProbeRecord",
    "check_targets", "decide", "estimate_needed", "fit_curve", "walk",
]


def __getattr__(name: str) -> Any:
    # ``decide`` pulls in the eval harness, which imports the spec, which imports DecideSpec from this package:
    # importing it lazily keeps ``tunewise.spec -> tunewise.decide.config`` free of cycles.
    if name == "decide":
        from tunewise.decide.engine import decide

        return decide
    raise AttributeError(name)
