"""Labels as they are given: one JSON line per answer in ``.tunewise/label/<queue>/labels.jsonl``.

Every answer is appended, flushed and fsynced before the page hears back, under a lock (threads of one server) and
an ``flock`` (several processes), so a closed tab or a killed server loses nothing already acknowledged. A line a
killed writer left half-written is ignored on reading, and the next write starts on a fresh line, so it never
swallows an answer. The latest answer of each (item, labeller) wins; where several labellers answered an item,
its gold target is their majority per field (a tie goes to the labeller whose name sorts first).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import threading
from pathlib import Path
from typing import Any

from tunewise.config import Project
from tunewise.data.agreement import merge_annotations
from tunewise.label.queue import list_queues, read_queue
from tunewise.label.record import ACTIONS, LabelEntry, LabelQueue
from tunewise.records import Example

LABELS_FILE = "labels.jsonl"
_LOCKS: dict[Path, threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()


def _lock(path: Path) -> threading.Lock:
    with _LOCKS_GUARD:
        return _LOCKS.setdefault(path.resolve(), threading.Lock())


def labels_path(queue: LabelQueue) -> Path:
    return queue.path / LABELS_FILE


def append_label(path: Path, entry: LabelEntry) -> None:
    """Append one answer durably (written, flushed and fsynced when this returns)."""
    line = (json.dumps(entry.to_dict(), ensure_ascii=False) + "\n").encode("utf-8")
    with _lock(path):
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":  # a killed writer's torn line: end it first
                line = b"\n" + line
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)  # also releases the flock


def read_labels(path: Path) -> list[LabelEntry]:
    """Every well-formed answer in file order; torn or malformed lines are skipped."""
    if not path.is_file():
        return []
    entries = []
    with open(path, "rb") as handle:
        for raw in handle:
            with contextlib.suppress(ValueError, TypeError, UnicodeDecodeError):
                data = json.loads(raw)
                entry = LabelEntry.from_dict(data)
                if entry.action in ACTIONS and entry.item and entry.labeller:
                    entries.append(entry)
    return entries


def latest_answers(entries: list[LabelEntry]) -> dict[tuple[str, str], LabelEntry]:
    """The last answer of each ``(item, labeller)``."""
    return {(e.item, e.labeller): e for e in entries}


def gold_targets(entries: list[LabelEntry]) -> dict[str, tuple[Any, list[str]]]:
    """Item -> ``(gold target, labellers)`` over the accepted and corrected answers (skips give none)."""
    by_item: dict[str, list[tuple[str, Example]]] = {}
    for (item, labeller), entry in latest_answers(entries).items():
        if entry.action != "skip":
            by_item.setdefault(item, []).append((labeller, Example(id=item, messages=[], target=entry.target)))
    merged, _, _ = merge_annotations(by_item) if by_item else ([], None, [])
    return {e.id: (e.target, sorted(n for n, _ in by_item[e.id])) for e in merged}


def queue_examples(queue: LabelQueue) -> list[Example]:
    """The labelled items of one queue as examples (queue order): the input, the gold target, ``meta["source"]``
    ``label``, ``meta["labellers"]`` and the row's ``meta["group"]`` when it has one."""
    gold = gold_targets(read_labels(labels_path(queue)))
    examples = []
    for item in queue.items:
        if item.id in gold:
            target, labellers = gold[item.id]
            meta = {**item.example.meta, "source": "label", "labellers": labellers}
            examples.append(
                Example(
                    id=item.id, messages=item.example.messages, target=target, source=f"label:{queue.id}", meta=meta
                )
            )
    return examples


def labelled_examples(project: Project, queue: str | None = None) -> list[Example]:
    """The labelled production rows of one queue (an id or prefix), or of every queue (a later queue's label of the
    same row wins).

    Raises:
        InputError: the named queue does not exist.
    """
    if queue is not None:
        return queue_examples(read_queue(project, queue))
    by_id: dict[str, Example] = {}
    for queue_id in list_queues(project):
        for example in queue_examples(read_queue(project, queue_id)):
            by_id.pop(example.id, None)
            by_id[example.id] = example
    return list(by_id.values())


def labelled_targets(project: Project) -> dict[str, Any]:
    """Request (traffic row) id -> gold target, accepted or corrected, over every queue: what the monitor's quality
    signal scores the champion's outputs against."""
    return {example.id: example.target for example in labelled_examples(project)}
