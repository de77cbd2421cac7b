"""decide: the fine-tuning decision tree answered by measurements, with cost and ROI."""

from tunewise.decide.cost import CostEstimate
from tunewise.decide.engine import decide
from tunewise.decide.record import Decision, Evidence, NodeAnswer, ProbeRecord
from tunewise.decide.sufficiency import SufficiencyEstimate, estimate_needed, fit_curve
from tunewise.decide.tree import ACTIONS, TREE, walk

__all__ = [
    "ACTIONS",
    "TREE",
    "CostEstimate",
    "Decision",
    "Evidence",
    "NodeAnswer",
    "ProbeRecord",
    "SufficiencyEstimate",
    "decide",
    "estimate_needed",
    "fit_curve",
    "walk",
]
