"""The ``RefreshDecision`` record: champion against challenger, both tests with their evidence, and what was done."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from tunewise.config import Project
from tunewise.records import SCHEMA_VERSION, Record
from tunewise.refresh.data import ChallengerSizes
from tunewise.refresh.gate import GateTest

DECISION_FILE = "decision.json"


@dataclass(frozen=True, kw_only=True)
class RefreshDecision(Record):
    """What one ``tunewise refresh`` decided, with everything needed to check it."""

    decision_id: str
    created_at: str
    project: str
    registered_model: str
    alias: str
    champion_version: str
    champion_dataset: str | None
    challenger_version: str
    challenger_run_id: str | None
    challenger_adapter: Path
    new_dataset: str
    """The dataset version whose train split holds the new labelled rows."""
    challenger_dataset: str
    """The challenger's training version: new rows + replay (train), golden set (dev), held-out new slice (test)."""
    sizes: ChallengerSizes
    metric: str
    golden: GateTest
    new_slice: GateTest
    promoted: bool
    reason: str
    resumed: bool = False
    """The challenger's training continued a run an earlier, interrupted refresh had begun."""
    timings: dict[str, float] = field(default_factory=dict)
    """Seconds per step: ``data``, ``train``, ``eval``, ``total``."""
    eval_dirs: dict[str, Path] = field(default_factory=dict)
    """The evaluation run directories (predictions of both models): ``golden``, ``new``."""
    run_dir: Path | None = None
    mlflow_run_id: str | None = None
    schema_version: int = SCHEMA_VERSION


def refresh_root(project: Project) -> Path:
    return project.state_dir / "refresh"


def list_decisions(project: Project) -> list[RefreshDecision]:
    """Every decision written, oldest first; unreadable ones skipped."""
    decisions = []
    for path in refresh_root(project).glob(f"*/{DECISION_FILE}"):
        try:
            decisions.append(RefreshDecision.from_dict(json.loads(path.read_text(encoding="utf-8"))))
        except (OSError, ValueError, TypeError, KeyError):
            continue
    return sorted(decisions, key=lambda d: d.created_at)


def latest_decision(project: Project) -> RefreshDecision | None:
    decisions = list_decisions(project)
    return decisions[-1] if decisions else None
