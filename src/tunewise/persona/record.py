"""The records a consistency eval leaves: each metric's curve over the turns, per candidate, and the comparisons."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from tunewise.records import MetricValue, PairedComparison, Record

RESULT_FILE = "result.json"

Direction = Literal["higher", "lower", "either"]
"""Which way is better for a metric; ``either``: a change in any direction is drift (style)."""


@dataclass(frozen=True)
class TurnPoint(Record):
    turn: int
    value: MetricValue


@dataclass(frozen=True)
class Curve(Record):
    """One metric of one candidate by turn, each later turn tested against turn 1 (paired over conversations)."""

    metric: str
    direction: Direction
    points: list[TurnPoint]
    against_first: list[PairedComparison]
    """Turn t minus turn 1, for every probe turn after the first (``a``/``b`` name the turns)."""
    drift_turn: int | None
    """The first turn significantly worse than turn 1 (95% CI of the difference excludes 0); ``None``: none."""
    holds: dict[str, bool]
    """Probe turn -> the drop from turn 1 is within the margin (non-inferiority); ``higher`` metrics only."""

    def at(self, turn: int) -> MetricValue:
        return next(p.value for p in self.points if p.turn == turn)


@dataclass(frozen=True)
class CandidateCurves(Record):
    candidate: str
    curves: list[Curve]
    conversations: int
    truncated: int
    """Conversations whose oldest exchanges were dropped to fit the context (the persona always kept)."""
    dropped_exchanges_max: int
    cut_by_length: int
    """Answers stopped by max_new_tokens, over all turns and probes."""
    seconds_per_conversation: float
    completion_tokens_per_conversation: float

    def curve(self, metric: str) -> Curve:
        return next(c for c in self.curves if c.metric == metric)


@dataclass(frozen=True)
class JudgeCheck(Record):
    """How far to trust the judge: its ``contradicts`` rate on gold turns of the persona's own dialogue (should be
    low) and on gold turns of other personas' dialogues (should be higher)."""

    judge: str
    own_rate: MetricValue
    other_rate: MetricValue


@dataclass(frozen=True)
class PersonaResult(Record):
    run_dir: Path
    conversations: int
    turns: int
    probe_turns: list[int]
    probes: list[str]
    distractors: int
    margin: float
    candidates: list[CandidateCurves]
    comparisons: list[PairedComparison]
    """Identifiability (rank) of each later candidate minus the first, at every probe turn (``a``/``b``: names)."""
    reference_words: float
    reference_uppercase: float
    judge: JudgeCheck | None
    created_at: str
    mlflow_run_id: str | None = None

    def candidate(self, name: str) -> CandidateCurves:
        return next(c for c in self.candidates if c.candidate == name)
