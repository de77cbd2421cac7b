"""The record ``tunewise monitor`` leaves: every signal of the window and of each bucket, with its test and verdict."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from tunewise.config import Project
from tunewise.records import SCHEMA_VERSION, MetricValue, Record

REPORT_FILE = "report.json"

Status = Literal["ok", "watch", "drift", "too_few", "untested"]
"""A signal's verdict. ``too_few``: fewer rows than ``monitor.min_examples``; ``untested``: nothing to test it on
(no outputs, a constant sample, no champion figure)."""

Verdict = Literal["ok", "watch", "drift", "too_few"]

SEVERITY = {"too_few": -1, "untested": -1, "ok": 0, "watch": 1, "drift": 2}


@dataclass(frozen=True, kw_only=True)
class SignalResult(Record):
    """One drift signal of one window: what was compared, its effect (with a 95% CI), its test and verdict."""

    name: str
    """The signal, named as its band in ``monitor.thresholds`` (``input_auc``, ``refusals``, …)."""
    group: Literal["input", "output", "quality"]
    effect: float | None
    """In the band's units: AUC, a relative median change, a rise or drop of a rate, a distance."""
    ci_low: float | None = None
    ci_high: float | None = None
    p_value: float | None = None
    p_adjusted: float | None = None
    """Holm-corrected over the signals tested in the same window."""
    test: str = ""
    reference_value: float | None = None
    window_value: float | None = None
    n_reference: int = 0
    n_window: int = 0
    status: Status = "ok"
    detail: dict[str, Any] = field(default_factory=dict)
    """Figures besides the effect (MMD², bandwidth, medians in tokens, label counts, …)."""


@dataclass(frozen=True, kw_only=True)
class BucketResult(Record):
    """One bucket of the trend: ``start <= created < end``."""

    start: float
    end: float
    n: int
    status: Verdict
    signals: list[SignalResult] = field(default_factory=list)

    def signal(self, name: str) -> SignalResult | None:
        return next((s for s in self.signals if s.name == name), None)


@dataclass(frozen=True, kw_only=True)
class DriftExample(Record):
    """A window input that drives the drift: the domain classifier finds it unlike the reference, and it lies far
    from its nearest reference input."""

    id: str
    created: float
    text: str
    domain_score: float
    """Out-of-fold probability, by the domain classifier, that the input is production rather than reference."""
    nearest_distance: float
    """Cosine distance to the nearest reference input."""
    output: str | None = None


@dataclass(frozen=True, kw_only=True)
class DriftReport(Record):
    """What ``tunewise monitor`` found in one window of production traffic against the champion's reference."""

    run_dir: Path
    verdict: Verdict
    """The worst signal over the whole window; ``too_few`` when the window has fewer than ``monitor.min_examples``."""
    model: str | None
    model_version: str | None
    traffic_source: str
    reference_source: str
    reference_dataset: str | None
    since: float | None
    """The window's start (unix time): ``--since``, else the first request's time."""
    until: float | None
    """The window's end: ``--until``, else the last request's time."""
    bucket: str
    """The trend's bucket length (``monitor.window``)."""
    n_window: int
    n_reference: int
    skipped: dict[str, int] = field(default_factory=dict)
    """Traffic rows left out: ``other_version`` (another version of the model answered), ``failed``."""
    signals: list[SignalResult] = field(default_factory=list)
    buckets: list[BucketResult] = field(default_factory=list)
    top_examples: list[DriftExample] = field(default_factory=list)
    output_reference: Literal["model", "given", "gold", "none"] = "none"
    """What the window's outputs were compared with: the watched model's answers to reference dev inputs, outputs
    the caller gave, the dev set's gold targets (label distribution and null fields only), or nothing."""
    output_reference_detail: str = ""
    metric: str = ""
    quality: MetricValue | None = None
    """The task metric on the labelled production examples of the window."""
    champion_metric: float | None = None
    champion_metric_source: str = ""
    settings: dict[str, Any] = field(default_factory=dict)
    """``monitor:`` as resolved for this run (thresholds, alpha, permutations, …)."""
    embedding_map: dict[str, list[list[float]]] = field(default_factory=dict)
    """2-D PCA coordinates of the embeddings: ``reference``, ``window``."""
    mlflow_run_id: str | None = None
    created_at: str = ""
    schema_version: int = SCHEMA_VERSION

    def signal(self, name: str) -> SignalResult | None:
        return next((s for s in self.signals if s.name == name), None)


def latest_report(project: Project) -> DriftReport | None:
    """The most recent monitor report of a project (``None`` if monitor never ran); unreadable ones are skipped."""
    reports = []
    for path in (project.state_dir / "monitor").glob(f"*/{REPORT_FILE}"):
        try:
            reports.append(DriftReport.from_dict(json.loads(path.read_text(encoding="utf-8"))))
        except (OSError, ValueError, TypeError, KeyError):
            continue
    return max(reports, key=lambda r: r.created_at, default=None)
