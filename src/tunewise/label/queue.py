"""``tunewise label queue``: which production inputs of a window are worth a domain expert's time.

Two shares fill the queue. A ``label.diverse_share`` of it is picked for coverage: k-means++ seeding over the
window's input embeddings, so every region of the traffic gets a few labels. The rest goes to the most informative
inputs: an invalid output (not JSON, schema-invalid, every field null; a classify output naming no label) counts
1, a share of null fields up to 0.5, an output cut at ``max_new_tokens`` 0.5 (the only confidence signal the
request log has), an input farther from the reference than 95 % of the reference's own inputs are from each other
1, disagreement with ``label.teacher`` 1; the cosine distance to the nearest reference input is added to break
ties, so among equals the newer input goes first. The teacher (optional) answers only the diverse picks and a
shortlist of twice the informative share, ranked by the other signals.

The queue is written atomically as ``.tunewise/label/<id>/queue.jsonl`` (the items, most informative first) and
``queue.json`` (the settings and counts); the id is the UTC time of writing and a hash of the items.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from tunewise import egress, embeddings
from tunewise.config import LabelSpec, Project
from tunewise.data.sample import select_diverse
from tunewise.errors import InputError
from tunewise.io.atomic import atomic_dir
from tunewise.io.jsonl import write_jsonl
from tunewise.label.record import LabelQueue, QueueItem
from tunewise.label.targets import null_fields, read_output
from tunewise.label.teacher import disagrees, teacher_outputs
from tunewise.models.base import Backend
from tunewise.monitor.reference import load_reference
from tunewise.monitor.stats import domain_classifier_auc, leave_one_out_distances
from tunewise.monitor.traffic import TrafficRow, input_text, load_traffic

Embedder = Callable[[list[str]], np.ndarray]
QUEUE_FILE = "queue.jsonl"
MANIFEST_FILE = "queue.json"
NOVELTY_PERCENTILE = 95.0
TEACHER_SHORTLIST = 2
"""The teacher answers the diverse picks and this many times the informative share, best-ranked first."""


def label_root(project: Project) -> Path:
    """Where queues and their labels live: ``.tunewise/label``."""
    return project.state_dir / "label"


@egress.guarded
def build_queue(
    project: Project,
    *,
    since: float | None = None,
    until: float | None = None,
    source: str | Path | None = None,
    model: str | None = None,
    spec: LabelSpec | None = None,
    embed: Embedder | None = None,
    backends: dict[str, Backend] | None = None,
) -> LabelQueue:
    """Choose the window's inputs to label and write the queue.

    Args:
        since / until: the window (unix times; ``since <= created < until``).
        source / model: the traffic (see :func:`tunewise.monitor.load_traffic`).
        spec: the ``label:`` settings (default: the spec's).
        embed: texts -> vectors (default: the embedded MiniLM).
        backends: ready backends by model name for the teacher (tests).

    Returns:
        The written :class:`LabelQueue` with its items.

    Raises:
        InputError: no traffic in the window, no reference data, or an unknown teacher.
    """
    spec = spec or project.spec.label
    traffic = load_traffic(project, source=source, model=model, since=since, until=until)
    rows = traffic.rows
    if not rows:
        raise InputError(f"no production inputs in the window of {traffic.source}", field="--since/--until")
    reference = load_reference(project, seed=spec.seed)
    ref_texts = [input_text(e) for e in reference.examples]
    vectors = _unit(np.asarray((embed or embeddings.embed_texts)([r.text for r in rows] + ref_texts), np.float64))
    window, ref = vectors[: len(rows)], vectors[len(rows) :]
    novelty = 1.0 - (window @ ref.T).max(axis=1)
    threshold = novelty_threshold(ref)
    read = [read_output(project, row.output) for row in rows]
    reasons = [_reasons(project, row, prefill, problem) for row, (prefill, problem) in zip(rows, read, strict=True)]
    for i in np.flatnonzero(novelty > threshold):
        reasons[i].append("new input")
    drifted, cut = _production_likeness(ref, window, spec.seed)
    for i in np.flatnonzero(drifted > cut):
        reasons[i].append("drifted")
    scores = [_score(r) + float(d) + float(p) for r, d, p in zip(reasons, novelty, drifted, strict=True)]

    n = min(spec.queue_size, len(rows))
    n_diverse = round(n * spec.diverse_share)
    diverse = select_diverse(window, n_diverse, seed=spec.seed) if n_diverse else []
    rest = _ranked([i for i in range(len(rows)) if i not in set(diverse)], scores, rows, spec.seed)
    teacher_says: dict[int, str] = {}
    if spec.teacher:
        asked = diverse + rest[: TEACHER_SHORTLIST * (n - n_diverse)]
        answers = teacher_outputs(project, spec.teacher, [rows[i].example for i in asked], backends=backends)
        teacher_says = dict(zip(asked, answers, strict=True))
        for i, answer in teacher_says.items():
            if disagrees(read[i][0], read_output(project, answer)[0]):
                reasons[i].append(f"disagrees with {spec.teacher}")
                scores[i] += 1.0
        rest = _ranked(rest, scores, rows, spec.seed)
    for i in diverse:
        reasons[i].append("coverage")
    chosen = _ranked(diverse + rest[: n - n_diverse], scores, rows, spec.seed)
    items = [
        QueueItem(
            id=rows[i].id,
            example=rows[i].example,
            created=rows[i].created,
            output=rows[i].output,
            prefill=read[i][0],
            reasons=reasons[i] or ["closest call left"],
            score=round(scores[i], 6),
            novelty=round(float(novelty[i]), 6),
            teacher_output=teacher_says.get(i),
            overlap=rank < spec.overlap,
        )
        for rank, i in enumerate(chosen)
    ]
    counts = Counter(reason.split(":")[0] for item in items for reason in item.reasons)
    queue = LabelQueue(
        id="",
        path=Path(),
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        task_kind=project.spec.task.kind,
        source=traffic.source,
        model=traffic.model,
        model_version=traffic.model_version,
        since=since,
        until=until,
        window_rows=len(rows),
        reference=reference.source,
        teacher=spec.teacher,
        seed=spec.seed,
        overlap=min(spec.overlap, len(items)),
        diverse=len(diverse),
        novelty_threshold=round(threshold, 6),
        reasons=dict(sorted(counts.items())),
        items=items,
    )
    return write_queue(project, queue)


def _production_likeness(reference: np.ndarray, window: np.ndarray, seed: int) -> tuple[np.ndarray, float]:
    """Each window input's out-of-fold probability of being production rather than reference (the monitor's domain
    classifier), and the cut above which it is ``drifted``: the 95th percentile of the reference inputs' own scores.
    High where the drift is, even when no input is far from every reference input (receipts of a new store look
    like receipts). 0.5 for all, nothing drifted, when either side is too small to cross-validate."""
    if min(len(reference), len(window)) < 10:
        return np.full(len(window), 0.5), float("inf")
    result = domain_classifier_auc(reference, window, bootstrap=100, seed=seed)
    assert result.reference_scores is not None
    return result.scores, float(np.percentile(result.reference_scores, NOVELTY_PERCENTILE))


def novelty_threshold(reference: np.ndarray) -> float:
    """The distance above which an input is new: the 95th percentile of the reference's leave-one-out
    nearest-neighbour cosine distances (unit vectors); with fewer than two reference inputs, never new."""
    if len(reference) < 2:
        return float("inf")
    return float(np.percentile(leave_one_out_distances(reference), NOVELTY_PERCENTILE))


def _unit(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms == 0, 1.0, norms)


def _reasons(project: Project, row: TrafficRow, prefill: object, problem: str | None) -> list[str]:
    reasons = []
    if problem is not None:
        reasons.append(f"invalid: {problem}")
    elif nulls := null_fields(project, prefill):
        reasons.append(f"null fields: {', '.join(nulls)}")
    if row.finish_reason == "length":
        reasons.append("truncated")
    return reasons


def _score(reasons: list[str]) -> float:
    score = 0.0
    for reason in reasons:
        if reason.startswith(("invalid", "new input", "disagrees")):
            score += 1.0
        elif reason == "truncated":
            score += 0.5
        elif reason.startswith("null fields"):
            score += 0.25
    return score


def _ranked(indices: list[int], scores: list[float], rows: list[TrafficRow], seed: int) -> list[int]:
    """Highest score first; ties in a seeded order of the ids (not the log's order)."""

    def key(i: int) -> tuple[float, str]:
        return -round(scores[i], 9), hashlib.sha256(f"{seed}:{rows[i].id}".encode()).hexdigest()

    return sorted(indices, key=key)


def write_queue(project: Project, queue: LabelQueue) -> LabelQueue:
    """Write a queue's directory atomically under a new id; return the queue with its id and path."""
    digest = hashlib.sha256(json.dumps([i.to_dict() for i in queue.items], sort_keys=True).encode()).hexdigest()
    stamp = datetime.fromisoformat(queue.created_at).strftime("%Y%m%d-%H%M%S")
    queue_id = f"{stamp}-{digest[:8]}"
    final = label_root(project) / queue_id
    queue = dataclasses.replace(queue, id=queue_id, path=final)
    if final.is_dir():  # the same items in the same second: that queue is this one
        return read_queue(project, queue_id)
    with atomic_dir(final) as tmp:
        write_jsonl(tmp / QUEUE_FILE, (item.to_dict() for item in queue.items))
        manifest = {k: v for k, v in queue.to_dict().items() if k not in ("items", "path")}
        (tmp / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return queue


def list_queues(project: Project) -> list[str]:
    """Every queue id, oldest first."""
    root = label_root(project)
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / MANIFEST_FILE).is_file() and not p.name.startswith("."))


def read_queue(project: Project, queue_id: str | None = None) -> LabelQueue:
    """A written queue with its items: ``queue_id`` (or a unique prefix), else the latest.

    Raises:
        InputError: no queue yet, or none (or several) match.
    """
    ids = list_queues(project)
    if not ids:
        raise InputError("no labelling queue yet (run: tunewise label queue)", file=label_root(project))
    matches = [ids[-1]] if queue_id is None else [i for i in ids if i.startswith(queue_id)]
    if len(matches) != 1:
        problem = "no queue matches" if not matches else f"{len(matches)} queues match"
        raise InputError(f"{problem} {queue_id!r} (queues: {', '.join(ids)})", field="--queue")
    path = label_root(project) / matches[0]
    manifest = json.loads((path / MANIFEST_FILE).read_text(encoding="utf-8"))
    with open(path / QUEUE_FILE, encoding="utf-8") as handle:
        items = [QueueItem.from_dict(json.loads(line)) for line in handle if line.strip()]
    return LabelQueue.from_dict({**manifest, "path": str(path), "items": [i.to_dict() for i in items]})
