"""``tunewise label import``: a queue's accepted and corrected items become a dataset version.

The version's train split is the labelled production rows (the input as the model saw it, the gold target,
``meta["source"] = "label"``, the row's ``meta["group"]`` when it has one), redacted like any version
(``curation.pii_mode``). It is content-addressed: the hash covers the rows, the curation parameters and the
provenance (queue, labellers, accepted and corrected counts), so importing the same labels again gives the same
version and rewrites nothing. Its ``manifest.json`` carries ``"origin": "label"``; :func:`latest_label_version` is
how the refresh stage finds it. The diff against the previous version (the champion's, else the latest) is printed
and stored beside the labels as ``import.json``.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from tunewise.config import Project
from tunewise.data.agreement import Agreement
from tunewise.data.build import DEFAULT_SALT, curation_params, length_stats, target_distribution
from tunewise.data.card import CardCounts, DatasetCard, DataSource
from tunewise.data.card_markdown import render_card
from tunewise.data.grounding import check_grounding
from tunewise.data.leakage import LeakageReport
from tunewise.data.redact import redact_examples
from tunewise.data.split import Splitting
from tunewise.data.versions import (
    FORMAT_VERSION,
    DatasetVersion,
    diff_versions,
    list_versions,
    load_version,
    split_jsonl,
    store_root,
    version_hash,
    write_version,
)
from tunewise.errors import InputError
from tunewise.io.atomic import atomic_write_text
from tunewise.io.outputs import check_output_root
from tunewise.label.agreement import label_agreement
from tunewise.label.queue import read_queue
from tunewise.label.record import LabelImport
from tunewise.label.store import labels_path, latest_answers, queue_examples, read_labels
from tunewise.monitor.reference import champion_dataset

ORIGIN = "label"
IMPORT_FILE = "import.json"


def import_labels(project: Project, queue: str | None = None) -> LabelImport:
    """Write (or find) the dataset version of one queue's labels (default: the latest queue) and diff it.

    Raises:
        InputError: no such queue, or no item accepted or corrected yet.
    """
    loaded = read_queue(project, queue)
    examples = queue_examples(loaded)
    if not examples:
        raise InputError(f"no labels to import in queue {loaded.id} (accept or correct items first)", field="--queue")
    store = store_root(project)
    check_output_root(store)
    previous = _previous(project)
    curation = project.spec.curation
    salt = os.environ.get(curation.pii_salt_env)
    redacted, pii = redact_examples(
        examples, mode=curation.pii_mode, salt=salt.encode() if salt else DEFAULT_SALT, kinds=curation.pii_types
    )
    if not redacted:
        raise InputError(f"every labelled row held PII and curation.pii_mode is {curation.pii_mode}", field="--queue")
    actions = Counter(e.action for e in latest_answers(read_labels(labels_path(loaded))).values())
    provenance = {
        "origin": ORIGIN,
        "queue": loaded.id,
        "traffic": loaded.source,
        "model": loaded.model,
        "model_version": loaded.model_version,
        "labellers": sorted({n for e in examples for n in e.meta.get("labellers", [])}),
        "accepted": actions["accept"],
        "corrected": actions["correct"],
    }
    train = split_jsonl(redacted)
    source = DataSource(
        split="train",
        path=_display(project, labels_path(loaded)),
        sha256=hashlib.sha256(train.encode("utf-8")).hexdigest(),
        rows=len(examples),
    )
    params = {**curation_params(project, curation), "provenance": provenance}
    digest = version_hash([source], params)
    card = DatasetCard(
        hash=digest,
        format_version=FORMAT_VERSION,
        created_at=datetime.now(UTC).isoformat(timespec="microseconds"),
        task_kind=project.spec.task.kind,
        sources=[source],
        params=params,
        counts=CardCounts(
            rows_read=len(examples),
            rows_after_annotation_merge=len(examples),
            exact_duplicates=0,
            near_duplicates=0,
            duplicates_dropped=0,
            pii_rows_dropped=len(pii.dropped),
            leaking_rows=0,
            rows_written=len(redacted),
            splits={"train": len(redacted)},
        ),
        duplicates=[],
        pii=pii,
        splitting=Splitting(
            mode="keep", seed=0, group_key=project.spec.data.group_field, stratified=False, groups_across_splits={}
        ),
        leakage=LeakageReport(threshold=curation.effective_leakage_threshold, action="report", leaks=[]),
        grounding=check_grounding(redacted) if project.spec.task.kind == "extract" and curation.grounding else None,
        agreement=_agreement(project, loaded.id),
        distribution={"train": target_distribution(project, redacted)},
        input_chars={"train": length_stats(redacted)},
        limitations=[
            "Production inputs labelled by hand on `tunewise label`: only a train split; dev and test stay the "
            "champion's.",
            "Person names are not detected: no named-entity recognizer ships with tunewise.",
        ],
        provenance=provenance,
    )
    files = {
        "train.jsonl": train,
        "card.json": json.dumps(card.to_dict(), indent=2, ensure_ascii=False) + "\n",
        "card.md": render_card(card),
    }
    created = not (store / digest).is_dir()
    manifest = {
        "origin": ORIGIN,
        "format_version": FORMAT_VERSION,
        "created_at": card.created_at,
        "sources": [source.to_dict()],
        "params": params,
        "counts": card.counts.to_dict(),
    }
    version = write_version(store, digest, files, manifest)
    if previous is not None and previous.hash == version.hash:
        previous = None
    result = LabelImport(
        queue=loaded.id,
        version=version.hash,
        path=version.path,
        created=created,
        rows=len(redacted),
        previous=previous.hash if previous is not None else None,
        diff=diff_versions(previous, version) if previous is not None else None,
    )
    atomic_write_text(loaded.path / IMPORT_FILE, json.dumps(result.to_dict(), indent=2, ensure_ascii=False) + "\n")
    return result


def latest_label_version(project: Project) -> DatasetVersion | None:
    """The newest dataset version written by ``tunewise label import`` (manifest ``origin: label``), if any."""
    labelled = [v for v in list_versions(project) if v.manifest.get("origin") == ORIGIN]
    return labelled[-1] if labelled else None


def _display(project: Project, path: Path) -> str:
    try:
        return str(path.resolve().relative_to(project.root))
    except ValueError:
        return str(path)


def _previous(project: Project) -> DatasetVersion | None:
    """The champion's dataset version, else the latest one, else none."""
    digest = champion_dataset(project)
    if digest is not None:
        try:
            return load_version(project, digest)
        except InputError:
            pass
    versions = list_versions(project)
    return versions[-1] if versions else None


def _agreement(project: Project, queue_id: str) -> Agreement | None:
    """Agreement on the items two labellers answered, for the card (``None`` without such items)."""
    try:
        return label_agreement(project, queue_id).agreement
    except InputError:
        return None
