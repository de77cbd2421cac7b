"""``tunewise data prepare``: the spec's data files -> one immutable, documented dataset version.

Steps: load and validate (all problems, or nothing is written) -> merge annotations -> exact and near
de-duplication within each split -> PII redaction -> split -> cross-split leakage -> grounding -> write.
"""

from __future__ import annotations

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

from tunewise.data.agreement import merge_annotations
from tunewise.data.card import render_card
from tunewise.data.config import CurationSpec
from tunewise.data.dedup import Duplicate, find_exact_duplicates, find_near_duplicates
from tunewise.data.grounding import check_grounding
from tunewise.data.leakage import Leak, apply_leakage_action, find_leaks
from tunewise.data.load import DataProblems, load_file
from tunewise.data.normalize import input_text, resolve_path
from tunewise.data.pii import RECOGNIZERS
from tunewise.data.redact import PiiReport, redact_examples
from tunewise.data.split import SPLITS, assign_splits, straddling_groups
from tunewise.data.versions import FORMAT_VERSION, DatasetVersion, split_jsonl, store_root, version_hash, write_version
from tunewise.errors import InputError
from tunewise.io.atomic import file_sha256
from tunewise.records import Example
from tunewise.spec import Project

DEFAULT_SALT = b"tunewise-default-salt"


@dataclass(frozen=True)
class PrepareResult:
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
        raise InputError("no data files declared (data.train / data.dev / data.test)", file=project.spec_file, field="data")
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


def prepare(project: Project, curation: CurationSpec | None = None, *, progress: Callable[[str], None] | None = None) -> PrepareResult:
    """Build (or find) the dataset version of the project's data files.

    Args:
        project: the loaded spec.
        curation: the curation parameters (default: the spec's ``curation:`` section, else ``CurationSpec()``).
        progress: told the name of each step as it starts (for a progress display).

    Returns:
        A :class:`PrepareResult`; an identical earlier version is returned without rewriting it.

    Raises:
        DataProblems: any row is malformed, lacks its target or breaks the output schema; nothing is written.
        InputError: no data file is declared, or an unknown PII type is named.
    """
    curation = curation or getattr(project.spec, "curation", None) or CurationSpec()
    step = progress or (lambda _: None)
    unknown = sorted(set(curation.pii_types or []) - set(RECOGNIZERS))
    if unknown:
        raise InputError(f"unknown PII type(s) {', '.join(unknown)} (known: {', '.join(sorted(RECOGNIZERS))})", field="curation.pii_types")
    files = source_files(project)
    sources = [{"split": s, "path": _display(project, p), "sha256": file_sha256(p) if p.is_file() else ""} for s, p in files]
    params = curation_params(project, curation)
    digest = version_hash(sources, params)
    store = store_root(project)
    if (store / digest).is_dir():
        from tunewise.data.versions import open_version

        return PrepareResult(open_version(store / digest), created=False)
    step("load and validate")
    raw, rows_by_id, agreement = _load_all(project, files, curation, sources)
    mode = curation.split if curation.split != "auto" else ("keep" if any(s != "train" for s in raw) else "resplit")
    if mode == "resplit":  # rows are pooled before splitting, so duplicates are searched across the whole pool
        raw = {"train": [e for name in SPLITS for e in raw.get(name, [])]}
    step("de-duplicate")
    deduped, duplicates = _dedup(raw, curation)
    step("detect PII")
    redacted: dict[str, list[Example]] = {}
    pii: PiiReport | None = None
    for split, examples in deduped.items():
        redacted[split], report = redact_examples(examples, mode=curation.pii_mode, salt=_salt(curation), kinds=curation.pii_types)
        pii = _merge_pii(pii, report)
    step("split")
    splits, splitting = _split(project, redacted, rows_by_id, curation, mode)
    step("check leakage")
    threshold = curation.effective_leakage_threshold
    leaks = find_leaks(splits, threshold=threshold, shingle_size=curation.shingle_size, num_perm=curation.num_perm)
    splits = apply_leakage_action(splits, leaks, curation.leakage_action)
    if not splits.get("train"):
        raise InputError(f"no training rows left after curation ({len(duplicates)} duplicates, {len(pii.dropped) if pii else 0} PII rows "
                         f"dropped, {len(leaks)} leaking rows): nothing written", file=project.spec_file, field="data.train")
    step("write version")
    queue = agreement.pop("queue") if agreement is not None else None
    card = _card(project, digest, sources, params, raw, deduped, duplicates, pii, splits, splitting, leaks, curation, agreement)
    files_out = {f"{name}.jsonl": split_jsonl(rows) for name, rows in splits.items() if rows}
    if queue is not None:
        files_out["disagreements.jsonl"] = "".join(json.dumps(q, ensure_ascii=False) + "\n" for q in queue)
    files_out["card.json"] = json.dumps(card, indent=2, ensure_ascii=False) + "\n"
    files_out["card.md"] = render_card(card)
    manifest = {"format_version": card["format_version"], "created_at": card["created_at"], "sources": sources, "params": params, "counts": card["counts"]}
    return PrepareResult(write_version(store, digest, files_out, manifest), created=True)


def _display(project: Project, path: Path) -> str:
    try:
        return str(path.resolve().relative_to(project.root))
    except ValueError:
        return str(path)


def _load_all(
    project: Project, files: list[tuple[str, Path]], curation: CurationSpec, sources: list[dict[str, Any]]
) -> tuple[dict[str, list[Example]], dict[str, dict[str, Any]], dict[str, Any] | None]:
    problems: list[InputError] = []
    raw: dict[str, list[Example]] = {}
    rows_by_id: dict[str, dict[str, Any]] = {}
    annotated: dict[str, dict[str, list[tuple[str, Example]]]] = {}
    field = curation.annotator_field
    for (split, path), source in zip(files, sources, strict=True):
        loaded = load_file(project, path, annotated=field is not None)
        problems += loaded.problems
        source["rows"] = len(loaded.examples)
        for example, row in zip(loaded.examples, loaded.example_rows, strict=True):
            rows_by_id.setdefault(example.id, row)
            if field is not None:
                if row.get(field) is None:
                    problems.append(InputError("missing annotator", file=path, line=int(example.source.rsplit(":", 1)[1]), field=field))
                    continue
                annotated.setdefault(split, {}).setdefault(example.id, []).append((str(row[field]), example))
        raw[split] = loaded.examples
    if problems:
        raise DataProblems(problems)
    if field is None:
        return raw, rows_by_id, None
    queue: list[dict[str, Any]] = []
    agreement: dict[str, Any] = {}
    for split, items in annotated.items():
        raw[split], agreement_split, queue_split = merge_annotations(items)
        agreement.setdefault("per_split", {})[split] = agreement_split
        queue += [{**q, "split": split} for q in queue_split]
    all_items = {f"{s}/{i}": pairs for s, items in annotated.items() for i, pairs in items.items()}
    _, overall, _ = merge_annotations(all_items)
    return raw, rows_by_id, {**overall, "disagreements": len(queue), "queue": queue}


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
        near = find_near_duplicates(rest, threshold=curation.near_dup_threshold, shingle_size=curation.shingle_size, num_perm=curation.num_perm)
        target = {e.id: e.target for e in rest}
        near_ids = {d.id for d in near if target[d.id] == target[d.twin]} if curation.drop_near_duplicates else set()
        out[split] = [e for e in examples if e.id not in exact_ids | near_ids]
        found += exact + near
    return out, found


def _merge_pii(total: PiiReport | None, report: PiiReport) -> PiiReport:
    if total is None:
        return report
    total.counts.update(report.counts)
    total.rows_with_pii += report.rows_with_pii
    total.dropped += report.dropped
    total.examples = (total.examples + report.examples)[:10]
    return total


def _group_of(project: Project, curation: CurationSpec, example: Example, row: dict[str, Any] | None) -> str | None:
    key = curation.group_key or project.spec.data.group_field
    if key is None:
        return None
    value = resolve_path(example, row, key)
    return None if value is None else str(value)


def _split(
    project: Project, examples: dict[str, list[Example]], rows_by_id: dict[str, dict[str, Any]], curation: CurationSpec, mode: str
) -> tuple[dict[str, list[Example]], dict[str, Any]]:
    pooled = [e for name in SPLITS for e in examples.get(name, [])]
    groups = {e.id: g for e in pooled if (g := _group_of(project, curation, e, rows_by_id.get(e.id))) is not None}
    stratified = curation.stratify and project.spec.task.kind == "classify" and not groups
    if mode == "keep":
        splits = {name: examples[name] for name in SPLITS if name in examples}
    else:
        labels = {e.id: str(e.target) for e in pooled} if stratified else None
        assignment = assign_splits([e.id for e in pooled], ratios=curation.split_ratios, seed=curation.seed, labels=labels, groups=groups or None)
        splits = {name: [e for e in pooled if assignment[e.id] == name] for name in SPLITS}
    final = {e.id: name for name, rows in splits.items() for e in rows}
    key = curation.group_key or project.spec.data.group_field
    return splits, {
        "mode": mode,
        "seed": curation.seed,
        "group_key": key,
        "stratified": stratified and mode == "resplit",
        "groups_across_splits": straddling_groups(final, groups) if key else {},
    }


def _duplicate_rows(raw: dict[str, list[Example]], duplicates: list[Duplicate]) -> list[dict[str, Any]]:
    """Duplicates for the card, each marked with whether its target agrees with its twin's (a label-noise signal)."""
    target = {e.id: e.target for rows in raw.values() for e in rows}
    return [{**d.to_dict(), "same_target": target.get(d.id) == target.get(d.twin)} for d in duplicates]


def _length_stats(examples: list[Example]) -> dict[str, float]:
    lengths = np.array([len(input_text(e)) for e in examples] or [0])
    return {"mean": round(float(lengths.mean()), 1), "p95": round(float(np.percentile(lengths, 95)), 1), "max": int(lengths.max())}


def _distribution(project: Project, examples: list[Example]) -> dict[str, int]:
    counts: Counter[str] = Counter()
    for e in examples:
        if isinstance(e.target, dict):
            counts.update(f"{k} non-empty" for k, v in e.target.items() if v not in (None, ""))
        elif project.spec.task.kind == "classify":
            counts[str(e.target)] += 1
        else:
            counts["rows"] += 1
    return dict(sorted(counts.items()))


def _card(
    project: Project,
    digest: str,
    sources: list[dict[str, Any]],
    params: dict[str, Any],
    raw: dict[str, list[Example]],
    deduped: dict[str, list[Example]],
    duplicates: list[Duplicate],
    pii: PiiReport | None,
    splits: dict[str, list[Example]],
    splitting: dict[str, Any],
    leaks: list[Leak],
    curation: CurationSpec,
    agreement: dict[str, Any] | None,
) -> dict[str, Any]:
    exact = sum(d.kind == "exact" for d in duplicates)
    near = sum(d.kind == "near" for d in duplicates)
    grounding = None
    if curation.grounding and project.spec.task.kind == "extract":
        grounding = check_grounding([e for rows in splits.values() for e in rows]).to_dict()
    return {
        "hash": digest,
        "format_version": FORMAT_VERSION,
        "created_at": datetime.now(UTC).isoformat(timespec="microseconds"),
        "task_kind": project.spec.task.kind,
        "sources": sources,
        "params": params,
        "counts": {
            "rows_read": sum(s["rows"] for s in sources),
            "rows_after_annotation_merge": sum(len(v) for v in raw.values()),
            "exact_duplicates": exact,
            "near_duplicates": near,
            "duplicates_dropped": sum(len(v) for v in raw.values()) - sum(len(v) for v in deduped.values()),
            "pii_rows_dropped": len(pii.dropped) if pii else 0,
            "leaking_rows": len(leaks),
            "rows_written": sum(len(v) for v in splits.values()),
            "splits": {name: len(rows) for name, rows in splits.items()},
        },
        "duplicates": _duplicate_rows(raw, duplicates),
        "pii": pii.to_dict() if pii else {"mode": curation.pii_mode, "counts": {}, "rows_with_pii": 0, "dropped": [], "examples": [], "person_names": "not detected"},
        "splitting": splitting,
        "leakage": {"threshold": curation.effective_leakage_threshold, "action": curation.leakage_action, "leaks": [leak.to_dict() for leak in leaks]},
        "grounding": grounding,
        "agreement": agreement,
        "distribution": {name: _distribution(project, rows) for name, rows in splits.items()},
        "input_chars": {name: _length_stats(rows) for name, rows in splits.items() if rows},
        "limitations": [
            "Person names are not detected: no named-entity recognizer ships with tunewise.",
            "PII detection is pattern-based (with Luhn / mod-97 / date checks); numbers shaped like phones "
            "(e.g. tax or account numbers) may be counted as phones.",
            "Near-duplicate similarity is a MinHash estimate of word-shingle Jaccard.",
            *(
                [f"PII hash mode used the built-in salt (${curation.pii_salt_env} is not set): hashed tokens can be "
                 "reversed by hashing guessed values. Set a private salt."]
                if curation.pii_mode == "hash" and not os.environ.get(curation.pii_salt_env)
                else []
            ),
        ],
    }
