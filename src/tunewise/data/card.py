"""The dataset card: what curation found, as a typed record (``card.json``) with its parts.

``DatasetCard.from_dict(json.loads(card_json_text))`` gives the record back; the Markdown rendering is in
:mod:`tunewise.data.card_markdown`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tunewise.data.agreement import Agreement
from tunewise.data.dedup import Duplicate
from tunewise.data.grounding import GroundingReport
from tunewise.data.leakage import LeakageReport
from tunewise.data.redact import PiiReport
from tunewise.data.split import Splitting
from tunewise.records import Record


@dataclass(frozen=True, kw_only=True)
class DataSource(Record):
    """One declared data file: its split, path (relative to the project when inside it), content hash and rows."""

    split: str
    path: str
    sha256: str
    """Empty when the file does not exist (loading then reports it)."""
    rows: int = 0
    """Rows read (0 until the file is loaded)."""


@dataclass(frozen=True, kw_only=True)
class CardCounts(Record):
    """Rows at each step of curation, and per split at the end."""

    rows_read: int
    rows_after_annotation_merge: int
    exact_duplicates: int
    near_duplicates: int
    duplicates_dropped: int
    pii_rows_dropped: int
    leaking_rows: int
    rows_written: int
    splits: dict[str, int]


@dataclass(frozen=True)
class CardDuplicate(Duplicate):
    """A duplicate as the card lists it: with whether its target equals its twin's (a label-noise signal)."""

    same_target: bool


@dataclass(frozen=True)
class LengthStats(Record):
    """Input length in characters over one split."""

    mean: float
    p95: float
    max: int


@dataclass(frozen=True, kw_only=True)
class DatasetCard(Record):
    """Everything ``tunewise data prepare`` found and did, written as ``card.json`` beside the version's splits."""

    hash: str
    format_version: int
    created_at: str
    task_kind: str
    sources: list[DataSource]
    params: dict[str, Any]
    """Every parameter that shapes the version's content (what its hash covers besides the sources)."""
    counts: CardCounts
    duplicates: list[CardDuplicate]
    pii: PiiReport
    splitting: Splitting
    leakage: LeakageReport
    grounding: GroundingReport | None
    """Extraction tasks with the grounding check on; ``None`` otherwise."""
    agreement: Agreement | None
    """Only when rows carry annotators (``curation.annotator_field``)."""
    distribution: dict[str, dict[str, int]]
    """Per split: label counts (classify), non-empty field counts (extract), or row counts."""
    input_chars: dict[str, LengthStats]
    limitations: list[str]
    provenance: dict[str, Any] | None = None
    """Targets a stage produced (``distill``: teacher, prompt, cost, filters); ``None`` for the user's own labels."""

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        if data["provenance"] is None:  # the cards written before the field existed stay byte-identical
            del data["provenance"]
        return data
