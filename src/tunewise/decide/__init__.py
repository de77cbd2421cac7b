"""decide: the fine-tuning decision tree answered by measurements, with cost and ROI."""

from tunewise.decide.config import DecideSpec, check_targets
from tunewise.decide.engine import decide
from tunewise.decide.record import Decision, Evidence, NodeAnswer, ProbeRecord
from tunewise.decide.sufficiency import estimate_needed, fit_curve
from tunewise.decide.tree import ACTIONS, TREE, walk

__all__ = ["ACTIONS", "TREE", "DecideSpec", "Decision", "Evidence", "NodeAnswer", "ProbeRecord", "check_targets", "decide", "estimate_needed", "fit_curve", "walk"]
