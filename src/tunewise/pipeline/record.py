"""The main job's record: every stage's records, the time each took, and the report."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tunewise.data import DatasetVersion
from tunewise.decide import Decision
from tunewise.monitor import DriftReport
from tunewise.pipeline.budget import TrainBudget
from tunewise.records import EvalSummary, Record
from tunewise.serve.query import ServedQueries
from tunewise.train import TrainResult
from tunewise.train.compare import BaselineComparison


@dataclass(frozen=True, kw_only=True)
class PipelineResult(Record):
    """What the main job produced: every stage's records, the time each stage took, and the pipeline report."""

    project: str
    baseline: EvalSummary
    decision: Decision
    dataset: DatasetVersion
    training: TrainResult | None = None
    """``None`` when the decision was not to fine-tune."""
    comparison: BaselineComparison | None = None
    served: ServedQueries | None = None
    """The served model's answers to a few held-out examples (``None`` when serving was skipped)."""
    champion: str | None = None
    """The registered version the champion alias was moved to (``None``: no fine-tune beat the baselines, or
    tracking was off)."""
    monitored: DriftReport | None = None
    """The served traffic against the champion's reference data (``None`` when serving was skipped)."""
    timings_s: dict[str, float]
    budget: TrainBudget | None = None
    """The small budget the run used (``None``: the spec's own ``train:`` section on every dev example)."""
    report_md: Path | None = None
    report_html: Path | None = None
