"""``tunewise label agreement``: how far labellers agree on the items two or more of them accepted or corrected,
with the curation stage's Cohen's kappa (two labellers) and Krippendorff's alpha (any number), per field for
``extract``."""

from __future__ import annotations

from tunewise.config import Project
from tunewise.data.agreement import merge_annotations
from tunewise.errors import InputError
from tunewise.label.queue import read_queue
from tunewise.label.record import LabelAgreement
from tunewise.label.store import labels_path, latest_answers, read_labels
from tunewise.records import Example


def label_agreement(project: Project, queue: str | None = None) -> LabelAgreement:
    """Agreement on the overlap of one queue (default: the latest).

    Raises:
        InputError: no such queue, or no item has answers from two labellers yet.
    """
    loaded = read_queue(project, queue)
    by_item: dict[str, list[tuple[str, Example]]] = {}
    for (item, labeller), entry in sorted(latest_answers(read_labels(labels_path(loaded))).items()):
        if entry.action != "skip":
            by_item.setdefault(item, []).append((labeller, Example(id=item, messages=[], target=entry.target)))
    shared = {item: pairs for item, pairs in by_item.items() if len(pairs) >= 2}
    if not shared:
        raise InputError(
            f"no item of queue {loaded.id} has labels from two labellers yet (set label.overlap and have two people "
            "label the first items)",
            field="label.overlap",
        )
    _, agreement, _ = merge_annotations(shared)
    return LabelAgreement(queue=loaded.id, items=len(shared), agreement=agreement)
