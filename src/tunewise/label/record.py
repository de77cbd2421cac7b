"""The labelling stage's records: a queue and its items, one answer of a labeller, an import, an agreement."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from tunewise.data.agreement import Agreement
from tunewise.records import Example, Record

Action = Literal["accept", "correct", "skip"]
ACTIONS: tuple[str, ...] = ("accept", "correct", "skip")


@dataclass(frozen=True, kw_only=True)
class QueueItem(Record):
    """One production input to label, pre-filled with the champion's output, with why it was chosen."""

    id: str
    """The traffic row's id (the request id): what a label is keyed by."""
    example: Example
    """The input as the model saw it (``target`` is ``None``; ``meta["group"]`` kept)."""
    created: float
    output: str | None
    """The champion's raw output, when the traffic has it."""
    prefill: Any
    """The output as a target: fields for ``extract`` (``None`` where absent), a label or ``None`` for ``classify``."""
    reasons: list[str]
    """Why it is queued: ``invalid: …``, ``null fields: …``, ``truncated``, ``new input``, ``disagrees with
    <teacher>``, ``coverage``."""
    score: float
    """Informativeness (higher: more worth a label)."""
    novelty: float
    """Cosine distance to the nearest reference input."""
    teacher_output: str | None = None
    overlap: bool = False
    """Shown to every labeller (the first ``label.overlap`` items), for agreement."""


@dataclass(frozen=True, kw_only=True)
class LabelQueue(Record):
    """A written queue: ``.tunewise/label/<id>/queue.jsonl`` (items) and ``queue.json`` (this, without items)."""

    id: str
    path: Path
    created_at: str
    task_kind: str
    source: str
    """The traffic read."""
    model: str | None
    model_version: str | None
    since: float | None
    until: float | None
    window_rows: int
    reference: str
    teacher: str | None
    seed: int
    overlap: int
    diverse: int
    """Items picked for coverage."""
    novelty_threshold: float
    """The distance above which an input counts as new: the 95th percentile of the reference's own
    nearest-neighbour distances."""
    reasons: dict[str, int]
    """How many items carry each kind of reason."""
    items: list[QueueItem] = field(default_factory=list)


@dataclass(frozen=True, kw_only=True)
class LabelEntry(Record):
    """One answer, as appended to ``labels.jsonl``: the latest per (item, labeller) wins."""

    item: str
    labeller: str
    action: str
    """``accept`` (the pre-fill is right), ``correct`` (the target given instead) or ``skip``."""
    target: Any
    time: float


@dataclass(frozen=True, kw_only=True)
class LabelAgreement(Record):
    """Agreement between labellers on the items two or more of them labelled (accepted or corrected)."""

    queue: str
    items: int
    """Items with answers from two or more labellers."""
    agreement: Agreement


@dataclass(frozen=True, kw_only=True)
class LabelImport(Record):
    """Labels imported as a dataset version, and what changed against the previous version."""

    queue: str
    version: str
    """The new version's hash."""
    path: Path
    created: bool
    """``False``: the same labels had been imported before (same hash, nothing rewritten)."""
    rows: int
    previous: str | None
    """The version diffed against: the champion's, else the latest before this import."""
    diff: dict[str, Any] | None
    """:func:`tunewise.data.diff_versions` from ``previous`` to the new version."""
