"""``tunewise data prepare``: the spec's data files -> one immutable, documented dataset version.

Steps: load and validate (all problems, or nothing is written) -> merge annotations -> exact and near
de-duplication within each split -> PII redaction -> split -> cross-split leakage -> grounding -> write.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from tunewise import egress
from tunewise.config import CurationSpec, Project
from tunewise.data.agreement import Agreement, merge_annotations
from tunewise.data.card import CardCounts, CardDuplicate, DatasetCard, DataSource, LengthStats
from tunewise.data.card_markdown import render_card
from tunewise.data.dedup import Duplicate, find_exact_duplicates, find_near_duplicates
from tunewise.data.grounding import check_grounding
from tunewise.data.leakage import LeakageReport, apply_leakage_action, find_leaks
from tunewise.data.load import DataProblems, load_file
from tunewise.data.normalize import input_text, resolve_path
from tunewise.data.pii import RECOGNIZERS
from tunewise.data.redact import PiiReport, combine_pii_reports, redact_examples
from tunewise.data.split import SPLITS, Splitting, assign_splits, straddling_groups
from tunewise.data.versions import (
    FORMAT_VERSION,
    DatasetVersion,
    open_version,
    split_jsonl,
    store_root,
    version_hash,
    write_version,
)
from tunewise.errors import InputError
from tunewise.io.atomic import clean_stale_temps, file_sha256
from tunewise.io.outputs import check_output_root
from tunewise.records import Example, Record
from tunewise.report.progress import ProgressDisplay, StepProgress

DEFAULT_SALT = b"tunewise-default-salt"


@dataclass(frozen=True)
class PrepareResult(Record):
    """The version and whether this call wrote it (``False``: identical inputs had produced it before)."""

    version: DatasetVersion
    created: bool


def source_files(project: Project) -> list[tuple[str, Path]]:
    """The spec's declared data files as ``(split, path)``.

    Raises:
        InputError: no data file is declared.
    """
    found = [(s, project.split_path(s)) for s in SPLITS if getattr(project.spec.data, s) is not None]
    if not found:
        raise InputError(
            "no data files declared (data.train / data.dev / data.test)", file=project.spec_file, field="data"
        )
    return found


def _salt(curation: CurationSpec) -> bytes:
    value = os.environ.get(curation.pii_salt_env)
    return value.encode("utf-8") if value else DEFAULT_SALT


def curation_params(project: Project, curation: CurationSpec) -> dict[str, Any]:
    """Every parameter that shapes a version's content (the PII salt only as a digest)."""
    params = curation.model_dump(mode="json")
    params["pii_salt_sha256"] = hashlib.sha256(_salt(curation)).hexdigest() if curation.pii_mode == "hash" else None
    task = project.spec.task
    params["task"] = {"kind": task.kind, "instructions": task.instructions, "input_template": task.input_template}
    params["data"] = project.spec.data.model_dump(mode="json", exclude={"train", "dev", "test", "documents"})
    params["output_schema"] = project.output_schema
    params["labels"] = project.labels
    return params


PREPARE_STEPS = ("load and validate", "de-duplicate", "detect PII", "split", "check leakage", "write version")


@egress.guarded
def prepare(
    project: Project,
    curation: CurationSpec | None = None,
    *,
    progress: bool = True,
    provenance: dict[str, Any] | None = None,
) -> PrepareResult:
    """Build (or find) the dataset version of the project's data files.

    Args:
        project: the loaded spec.
        curation: the curation parameters (default: the spec's ``curation:`` section).
        progress: show each step as it starts (a bar on a terminal, else lines on stderr).
        provenance: where targets came from when a stage wrote them (``distill``: the teacher, its prompt, its cost,
            the filters); recorded in the card and covered by the version's hash.

    Returns:
        A :class:`PrepareResult`; an identical earlier version is returned without rewriting it.

    Raises:
        DataProblems: any row is malformed, lacks its target or breaks the output schema; nothing is written.
        InputError: no data file is declared, or an unknown PII type is named.
    """
    with ProgressDisplay("prepare", enabled=progress) as display:
        steps = StepProgress(display, PREPARE_STEPS)
        result = _prepare(project, curation, steps.start, provenance)
        steps.finish()
    return result


def _prepare(
    project: Project, curation: CurationSpec | None, step: Callable[[str], None], provenance: dict[str, Any] | None
) -> PrepareResult:
    curation = curation or project.spec.curation
    unknown = sorted(set(curation.pii_types or []) - set(RECOGNIZERS))
    if unknown:
        raise InputError(
            f"unknown PII type(s) {', '.join(unknown)} (known: {', '.join(sorted(RECOGNIZERS))})",
            field="curation.pii_types",
        )
    files = source_files(project)
    sources = [
        DataSource(split=s, path=_display(project, p), sha256=file_sha256(p) if p.is_file() else "") for s, p in files
    ]
    params = curation_params(project, curation)
    if provenance is not None:
        params["provenance"] = provenance
    digest = version_hash(sources, params)
    store = store_root(project)
    clean_stale_temps(store)  # what an earlier, killed run left behind
    if (store / digest).is_dir():
        return PrepareResult(open_version(store / digest), created=False)
    check_output_root(store)  # before any curation work
    step("load and validate")
    loaded = _load_all(project, files, curation, sources)
    raw = loaded.examples
    mode = curation.split if curation.split != "auto" else ("keep" if any(s != "train" for s in raw) else "resplit")
    if mode == "resplit":  # rows are pooled before splitting, so duplicates are searched across the whole pool
        raw = {"train": [e for name in SPLITS for e in raw.get(name, [])]}
    step("de-duplicate")
    deduped, duplicates = _dedup(raw, curation)
    step("detect PII")
    redacted: dict[str, list[Example]] = {}
    pii = PiiReport(mode=curation.pii_mode)
    for split, examples in deduped.items():
        redacted[split], report = redact_examples(
            examples, mode=curation.pii_mode, salt=_salt(curation), kinds=curation.pii_types
        )
        pii = combine_pii_reports(pii, report)
    step("split")
    splits, splitting = _split(project, redacted, loaded.rows_by_id, curation, mode)
    step("check leakage")
    threshold = curation.effective_leakage_threshold
    leaks = find_leaks(splits, threshold=threshold, shingle_size=curation.shingle_size, num_perm=curation.num_perm)
    splits = apply_leakage_action(splits, leaks, curation.leakage_action)
    if not splits.get("train"):
        raise InputError(
            f"no training rows left after curation ({len(duplicates)} duplicates, {len(pii.dropped)} PII rows "
            f"dropped, {len(leaks)} leaking rows): nothing written",
            file=project.spec_file,
            field="data.train",
        )
    step("write version")
    grounded = curation.grounding and project.spec.task.kind == "extract"
    card = DatasetCard(
        hash=digest,
        format_version=FORMAT_VERSION,
        created_at=datetime.now(UTC).isoformat(timespec="microseconds"),
        task_kind=project.spec.task.kind,
        sources=loaded.sources,
        params=params,
        counts=_counts(loaded.sources, raw, deduped, duplicates, pii, splits, leaking=len(leaks)),
        duplicates=_card_duplicates(raw, duplicates),
        pii=pii,
        splitting=splitting,
        leakage=LeakageReport(threshold=threshold, action=curation.leakage_action, leaks=leaks),
        grounding=check_grounding([e for rows in splits.values() for e in rows]) if grounded else None,
        agreement=loaded.agreement,
        distribution={name: target_distribution(project, rows) for name, rows in splits.items()},
        input_chars={name: length_stats(rows) for name, rows in splits.items() if rows},
        limitations=_limitations(curation),
        provenance=provenance,
    )
    return PrepareResult(
        write_version(store, digest, _version_files(card, splits, loaded), _manifest(card)), created=True
    )


def _version_files(card: DatasetCard, splits: dict[str, list[Example]], loaded: _Loaded) -> dict[str, str]:
    files = {f"{name}.jsonl": split_jsonl(rows) for name, rows in splits.items() if rows}
    if loaded.agreement is not None:
        files["disagreements.jsonl"] = "".join(json.dumps(q, ensure_ascii=False) + "\n" for q in loaded.disagreements)
    files["card.json"] = json.dumps(card.to_dict(), indent=2, ensure_ascii=False) + "\n"
    files["card.md"] = render_card(card)
    return files


def _manifest(card: DatasetCard) -> dict[str, Any]:
    sources = [s.to_dict() for s in card.sources]
    return {
        "format_version": card.format_version,
        "created_at": card.created_at,
        "sources": sources,
        "params": card.params,
        "counts": card.counts.to_dict(),
    }


def _display(project: Project, path: Path) -> str:
    try:
        return str(path.resolve().relative_to(project.root))
    except ValueError:
        return str(path)


@dataclass(frozen=True)
class _Loaded:
    """The declared files read and validated, with several annotations of a row merged into one."""

    sources: list[DataSource]
    """With the rows read from each."""
    examples: dict[str, list[Example]]
    rows_by_id: dict[str, dict[str, Any]]
    agreement: Agreement | None
    """Only when rows carry annotators."""
    disagreements: list[dict[str, Any]]
    """The (item, field) pairs annotators disputed, for ``disagreements.jsonl``."""


def _load_all(
    project: Project, files: list[tuple[str, Path]], curation: CurationSpec, sources: list[DataSource]
) -> _Loaded:
    problems: list[InputError] = []
    raw: dict[str, list[Example]] = {}
    rows_by_id: dict[str, dict[str, Any]] = {}
    annotated: dict[str, dict[str, list[tuple[str, Example]]]] = {}
    read: list[DataSource] = []
    field = curation.annotator_field
    for (split, path), source in zip(files, sources, strict=True):
        loaded = load_file(project, path, annotated=field is not None)
        problems += loaded.problems
        read.append(dataclasses.replace(source, rows=len(loaded.examples)))
        for example, row in zip(loaded.examples, loaded.example_rows, strict=True):
            rows_by_id.setdefault(example.id, row)
            if field is not None:
                if row.get(field) is None:
                    problems.append(
                        InputError(
                            "missing annotator", file=path, line=int(example.source.rsplit(":", 1)[1]), field=field
                        )
                    )
                    continue
                annotated.setdefault(split, {}).setdefault(example.id, []).append((str(row[field]), example))
        raw[split] = loaded.examples
    if problems:
        raise DataProblems(problems)
    if field is None:
        return _Loaded(read, raw, rows_by_id, None, [])
    queue: list[dict[str, Any]] = []
    for split, items in annotated.items():
        raw[split], _, disputed = merge_annotations(items)
        queue += [{**q, "split": split} for q in disputed]
    # Agreement is measured over every split at once; its disputed pairs are the union of the splits' queues.
    _, agreement, _ = merge_annotations(
        {f"{s}/{i}": pairs for s, items in annotated.items() for i, pairs in items.items()}
    )
    return _Loaded(read, raw, rows_by_id, agreement, queue)


def _dedup(raw: dict[str, list[Example]], curation: CurationSpec) -> tuple[dict[str, list[Example]], list[Duplicate]]:
    """Within each split: drop exact duplicates, then near-duplicates whose target equals their twin's.

    A near-duplicate input with a different target (a receipt of the same shop with other items, or a
    conflicting label) is kept and only listed; the card marks it for review.
    """
    out: dict[str, list[Example]] = {}
    found: list[Duplicate] = []
    for split, examples in raw.items():
        exact = find_exact_duplicates(examples) if curation.dedup_exact else []
        exact_ids = {d.id for d in exact}
        rest = [e for e in examples if e.id not in exact_ids]
        near = find_near_duplicates(
            rest, threshold=curation.near_dup_threshold, shingle_size=curation.shingle_size, num_perm=curation.num_perm
        )
        target = {e.id: e.target for e in rest}
        near_ids = {d.id for d in near if target[d.id] == target[d.twin]} if curation.drop_near_duplicates else set()
        out[split] = [e for e in examples if e.id not in exact_ids | near_ids]
        found += exact + near
    return out, found


def _group_of(project: Project, curation: CurationSpec, example: Example, row: dict[str, Any] | None) -> str | None:
    key = curation.group_key or project.spec.data.group_field
    if key is None:
        return None
    value = resolve_path(example, row, key)
    return None if value is None else str(value)


def _split(
    project: Project,
    examples: dict[str, list[Example]],
    rows_by_id: dict[str, dict[str, Any]],
    curation: CurationSpec,
    mode: str,
) -> tuple[dict[str, list[Example]], Splitting]:
    pooled = [e for name in SPLITS for e in examples.get(name, [])]
    groups = {e.id: g for e in pooled if (g := _group_of(project, curation, e, rows_by_id.get(e.id))) is not None}
    stratified = curation.stratify and project.spec.task.kind == "classify" and not groups
    if mode == "keep":
        splits = {name: examples[name] for name in SPLITS if name in examples}
    else:
        labels = {e.id: str(e.target) for e in pooled} if stratified else None
        assignment = assign_splits(
            [e.id for e in pooled],
            ratios=curation.split_ratios,
            seed=curation.seed,
            labels=labels,
            groups=groups or None,
        )
        splits = {name: [e for e in pooled if assignment[e.id] == name] for name in SPLITS}
    final = {e.id: name for name, rows in splits.items() for e in rows}
    key = curation.group_key or project.spec.data.group_field
    return splits, Splitting(
        mode=mode,
        seed=curation.seed,
        group_key=key,
        stratified=stratified and mode == "resplit",
        groups_across_splits=straddling_groups(final, groups) if key else {},
    )


def _counts(
    sources: list[DataSource],
    raw: dict[str, list[Example]],
    deduped: dict[str, list[Example]],
    duplicates: list[Duplicate],
    pii: PiiReport,
    splits: dict[str, list[Example]],
    *,
    leaking: int,
) -> CardCounts:
    return CardCounts(
        rows_read=sum(s.rows for s in sources),
        rows_after_annotation_merge=sum(len(v) for v in raw.values()),
        exact_duplicates=sum(d.kind == "exact" for d in duplicates),
        near_duplicates=sum(d.kind == "near" for d in duplicates),
        duplicates_dropped=sum(len(v) for v in raw.values()) - sum(len(v) for v in deduped.values()),
        pii_rows_dropped=len(pii.dropped),
        leaking_rows=leaking,
        rows_written=sum(len(v) for v in splits.values()),
        splits={name: len(rows) for name, rows in splits.items()},
    )


def _card_duplicates(raw: dict[str, list[Example]], duplicates: list[Duplicate]) -> list[CardDuplicate]:
    """Duplicates for the card, each marked with whether its target agrees with its twin's (a label-noise signal)."""
    target = {e.id: e.target for rows in raw.values() for e in rows}
    return [
        CardDuplicate(d.id, d.twin, d.similarity, d.kind, same_target=target.get(d.id) == target.get(d.twin))
        for d in duplicates
    ]


def length_stats(examples: list[Example]) -> LengthStats:
    """Input lengths in characters (mean, p95, max) for a dataset card."""
    lengths = np.array([len(input_text(e)) for e in examples] or [0])
    return LengthStats(
        mean=round(float(lengths.mean()), 1), p95=round(float(np.percentile(lengths, 95)), 1), max=int(lengths.max())
    )


def target_distribution(project: Project, examples: list[Example]) -> dict[str, int]:
    """Targets for a dataset card: non-empty fields (extract), labels (classify), else a row count."""
    counts: Counter[str] = Counter()
    for e in examples:
        if isinstance(e.target, dict):
            counts.update(f"{k} non-empty" for k, v in e.target.items() if v not in (None, ""))
        elif project.spec.task.kind == "classify":
            counts[str(e.target)] += 1
        else:
            counts["rows"] += 1
    return dict(sorted(counts.items()))


def _limitations(curation: CurationSpec) -> list[str]:
    limitations = [
        "Person names are not detected: no named-entity recognizer ships with tunewise.",
        "PII detection is pattern-based (with Luhn / mod-97 / date checks); numbers shaped like phones "
        "(e.g. tax or account numbers) may be counted as phones.",
        "Near-duplicate similarity is a MinHash estimate of word-shingle Jaccard.",
    ]
    if curation.pii_mode == "hash" and not os.environ.get(curation.pii_salt_env):
        limitations.append(
            f"PII hash mode used the built-in salt (${curation.pii_salt_env} is not set): hashed tokens can be "
            "reversed by hashing guessed values. Set a private salt."
        )
    return limitations
