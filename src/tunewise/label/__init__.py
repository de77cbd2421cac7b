"""Labelling: a queue of drifted production inputs and a local page to label them on.

from tunewise.label import build_queue, start_label_server, import_labels
queue = build_queue(project, since=t0)          # LabelQueue: diverse + informative items, pre-filled
with start_label_server(project, port=0) as s:  # the page at s.url?labeller=NAME; labels land as given
    ...
version = import_labels(project)                # LabelImport: a content-addressed dataset version + its diff
"""

from tunewise.label.agreement import label_agreement
from tunewise.label.app import RunningLabelServer, create_label_app, serve_labels, start_label_server
from tunewise.label.queue import build_queue, list_queues, read_queue
from tunewise.label.record import LabelAgreement, LabelEntry, LabelImport, LabelQueue, QueueItem
from tunewise.label.store import labelled_examples, labelled_targets
from tunewise.label.version import import_labels, latest_label_version

__all__ = [
    "LabelAgreement",
    "LabelEntry",
    "LabelImport",
    "LabelQueue",
    "QueueItem",
    "RunningLabelServer",
    "build_queue",
    "create_label_app",
    "import_labels",
    "label_agreement",
    "labelled_examples",
    "labelled_targets",
    "latest_label_version",
    "list_queues",
    "read_queue",
    "serve_labels",
    "start_label_server",
]
