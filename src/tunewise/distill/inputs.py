"""The inputs a teacher labels: read and validated (file:line), de-duplicated, PII-masked before a hosted teacher."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunewise.config import Project
from tunewise.data.dedup import find_exact_duplicates, find_near_duplicates
from tunewise.data.redact import redact_examples
from tunewise.data.versions import load_version
from tunewise.errors import InputError
from tunewise.examples import row_to_input, spread_order
from tunewise.io.jsonl import read_jsonl
from tunewise.records import Example


@dataclass
class InputSet:
    """The curated inputs, their gold targets where rows had one, and what curation removed."""

    source: str
    examples: list[Example]
    gold: dict[str, Any]
    gold_is_reference: bool
    """The gold came from ``data.train`` (distilling its inputs): it is measured against, never used to filter."""
    counts: dict[str, int] = field(default_factory=dict)
    pii_masked: int = 0


def load_inputs(project: Project, *, hosted_teacher: bool) -> InputSet:
    """The inputs ``distill.inputs`` or ``distill.dataset`` names (default: ``data.train``'s). Targets found in
    ``data.train`` or a dataset version are kept aside as reference gold: measured against, never used to filter.

    Raises:
        InputError: a malformed row (file, line, field), a duplicate id, or no inputs at all.
    """
    spec = project.spec.distill
    if spec.dataset is not None:
        version = load_version(project, spec.dataset)
        rows = version.read_split("train")
        examples = [dataclasses.replace(e, target=None) for e in rows]
        gold = {e.id: e.target for e in rows}
        source, reference = f"dataset {version.hash[:12]} (train)", True
    else:
        if spec.inputs is not None:
            path, reference = project.declared_file(spec.inputs, ("distill", "inputs"), what="inputs file"), False
        else:
            path, reference = project.split_path("train"), True
        examples, gold = _read(project, path)
        source = str(path)
    counts = {"read": len(examples)}
    curation = project.spec.curation
    dropped = {d.id for d in find_exact_duplicates(examples)}
    counts["exact_duplicates"] = len(dropped)
    kept = [e for e in examples if e.id not in dropped]
    near = find_near_duplicates(
        kept, threshold=curation.near_dup_threshold, shingle_size=curation.shingle_size, num_perm=curation.num_perm
    )
    near_ids = {d.id for d in near}
    counts["near_duplicates"] = len(near_ids)
    kept = spread_order([e for e in kept if e.id not in near_ids], seed=project.spec.eval.seed)
    if spec.max_inputs is not None:
        counts["beyond_max_inputs"] = max(len(kept) - spec.max_inputs, 0)
        kept = kept[: spec.max_inputs]
    masked = 0
    if hosted_teacher and spec.redact_pii:
        redacted, report = redact_examples(kept, mode="mask", salt=b"", kinds=curation.pii_types)
        masked = report.rows_with_pii
        kept = redacted
    counts["kept"] = len(kept)
    kept_ids = {e.id for e in kept}
    return InputSet(
        source=source,
        examples=kept,
        gold={k: v for k, v in gold.items() if k in kept_ids},
        gold_is_reference=reference,
        counts=counts,
        pii_masked=masked,
    )


def _read(project: Project, path: Path) -> tuple[list[Example], dict[str, Any]]:
    examples: list[Example] = []
    gold: dict[str, Any] = {}
    seen: dict[str, int] = {}
    for line, row in read_jsonl(path):
        example, target = row_to_input(project, row, path, line)
        if example.id in seen:
            field_name = project.spec.data.id_field
            raise InputError(
                f"duplicate id {example.id!r} (first on line {seen[example.id]})",
                file=path,
                line=line,
                field=field_name,
            )
        seen[example.id] = line
        examples.append(example)
        if target is not None:
            gold[example.id] = target
    if not examples:
        raise InputError("no inputs in file", file=path)
    return examples, gold
