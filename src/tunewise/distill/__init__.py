"""Distillation: an expensive teacher labels inputs once (cache, journal, spend cap), a small student learns them.

from tunewise.distill import distill
result = distill(project)              # DistillResult: labels, student adapter, student vs teacher
"""

from tunewise.distill.record import DistillResult, LabelStats, SideBySide, latest_result
from tunewise.distill.run import distill

__all__ = ["DistillResult", "LabelStats", "SideBySide", "distill", "latest_result"]
