"""The records a distillation leaves: what labelling did and cost, and the student against the teacher."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from tunewise.records import SCHEMA_VERSION, MetricValue, PairedComparison, Record

RESULT_FILE = "result.json"


@dataclass(frozen=True, kw_only=True)
class LabelStats(Record):
    """Labelling in numbers: curation, the teacher's answers and what was kept, the calls and their cost."""

    source: str
    curation: dict[str, int]
    """read, exact/near duplicates, beyond max_inputs, kept."""
    pii_masked: int
    inputs: int
    labelled: int
    """Answers kept as training targets."""
    rejected: dict[str, int]
    """Answers not kept, by reason (``distill.filters.REASONS``)."""
    failed: int
    """Inputs the teacher gave nothing for (after retries): recorded with the reason, tried again next run."""
    pending: int
    """Inputs not sent because a cap was reached."""
    sent: int
    cached: int
    resumed: int
    in_doubt_resent: int
    usd: float
    """What this run's teacher calls cost (all its passes): the sum over the calls that succeeded."""
    tokens: int
    calls: int
    gold_agreement: MetricValue | None = None
    """The teacher's targets against the inputs' own gold targets, where rows had one."""
    wall_s: float = 0.0


@dataclass(frozen=True, kw_only=True)
class SideBySide(Record):
    """One model of the comparison on the same gold examples."""

    name: str
    role: Literal["teacher", "student", "base", "ceiling"]
    quality: MetricValue
    latency_p50_ms: float
    latency_p95_ms: float
    prompt_tokens_mean: float
    completion_tokens_mean: float
    usd_per_1m_tokens: float | None
    usd_per_1k_requests: float | None


@dataclass(frozen=True, kw_only=True)
class DistillResult(Record):
    """What ``tunewise distill`` did: labelled, trained, and compared, or where it stopped."""

    name: str
    run_dir: Path
    status: Literal["complete", "labelled", "capped"]
    """``labelled``: ``--label-only``; ``capped``: a spend cap stopped labelling (raise it and run again)."""
    teacher: str
    metric: str
    labels: LabelStats
    dataset_hash: str | None = None
    adapter_dir: Path | None = None
    ceiling_adapter_dir: Path | None = None
    eval_run_dir: Path | None = None
    candidates: list[SideBySide] = field(default_factory=list)
    quality_ratio: MetricValue | None = None
    """Student quality / teacher quality on the same examples, with a paired bootstrap CI."""
    latency_p50_ratio: float | None = None
    latency_p95_ratio: float | None = None
    prompt_tokens_ratio: float | None = None
    cost_ratio: float | None = None
    """Student $ per 1,000 requests / teacher $ per 1,000 requests."""
    comparisons: list[PairedComparison] = field(default_factory=list)
    mlflow_run_id: str | None = None
    created_at: str = ""
    schema_version: int = SCHEMA_VERSION

    def side(self, role: str) -> SideBySide | None:
        return next((c for c in self.candidates if c.role == role), None)


def latest_result(state_dir: Path) -> DistillResult | None:
    """The most recent complete distillation of a project (``None`` if none has run)."""
    results = []
    for path in (state_dir / "distill").glob(f"*/{RESULT_FILE}"):
        try:
            result = DistillResult.from_dict(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError, KeyError):
            continue
        if result.status == "complete":
            results.append(result)
    return max(results, key=lambda r: r.created_at, default=None)
