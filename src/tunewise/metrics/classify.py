"""Classification metrics: map a raw output to a label, accuracy, macro F1 and the confusion matrix."""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from tunewise.metrics.context import MetricContext
from tunewise.metrics.normalize import normalize_text

INVALID = "(invalid)"
"""The confusion-matrix column of outputs that map to no label."""

_EDGE_PUNCT = " \t\n\"'`.,;:!?()[]{}<>*"


def _loose(text: str) -> str:
    """Case-, whitespace- and separator-insensitive form: ``"Card_Arrival"`` -> ``"card arrival"``."""
    return " ".join(normalize_text(text).replace("_", " ").replace("-", " ").split())


def map_label(output: str, labels: list[str]) -> str | None:
    """The label an output names, or ``None``.

    In order: the stripped output equals a label; equals exactly one label ignoring case, whitespace, ``_``/``-``
    and surrounding punctuation or quotes; contains exactly one label as whole words (a label contained in a longer
    matched label does not count, so ``"card arrival"`` beats ``"card"``). Otherwise (no label, or several) ``None``.
    """
    stripped = output.strip()
    if stripped in labels:
        return stripped
    loose = {label: _loose(label) for label in labels}
    target = _loose(stripped.strip(_EDGE_PUNCT))
    equal = [label for label, form in loose.items() if form == target]
    if len(equal) == 1:
        return equal[0]
    text = _loose(stripped)
    contained = [
        label for label, form in loose.items() if form and re.search(r"(?<!\w)" + re.escape(form) + r"(?!\w)", text)
    ]
    maximal = [a for a in contained if not any(a != b and loose[a] in loose[b] for b in contained)]
    return maximal[0] if len(maximal) == 1 else None


def score_classify(ctx: MetricContext, output: str, target: Any) -> tuple[str | None, dict[str, Any]]:
    """Map one raw output to a label and score it.

    Returns:
        ``(predicted, {"correct", "predicted", "gold", "valid_label"})``.

    Raises:
        ValueError: the context has no labels.
    """
    if not ctx.labels:
        raise ValueError("classify metrics need the task's label set")
    predicted = map_label(output, ctx.labels)
    gold = str(target).strip()
    return predicted, {
        "correct": predicted == gold,
        "predicted": predicted,
        "gold": gold,
        "valid_label": predicted is not None,
    }


def label_indicators(labels: list[str], scores: list[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-example one-hot ``(tp, fp, fn)`` matrices of shape ``(n, n_labels)`` for macro F1.

    An invalid prediction is a false negative for the gold label and a false positive for no label. A gold label
    outside ``labels`` gets its own column, so it still counts (as a miss) in the macro average.
    """
    columns = list(labels) + sorted({s["gold"] for s in scores} - set(labels))
    index = {label: i for i, label in enumerate(columns)}
    n, k = len(scores), len(columns)
    tp, fp, fn = np.zeros((n, k)), np.zeros((n, k)), np.zeros((n, k))
    for row, score in enumerate(scores):
        gold, predicted = index[score["gold"]], score["predicted"]
        if score["correct"]:
            tp[row, gold] = 1
            continue
        fn[row, gold] = 1
        if predicted is not None:
            fp[row, index[predicted]] = 1
    return tp, fp, fn


def macro_f1_from_counts(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> np.ndarray:
    """Macro F1 over the last axis, averaging only labels that occur as gold or prediction (rows: resamples)."""
    denominator = 2 * tp + fp + fn
    present = denominator > 0
    f1 = np.divide(2 * tp, denominator, out=np.zeros_like(denominator, dtype=float), where=present)
    count = present.sum(axis=-1)
    return np.divide(f1.sum(axis=-1), count, out=np.ones(count.shape), where=count > 0)


def confusion_matrix(
    ctx: MetricContext, scores: list[dict[str, Any]], targets: list[Any] | None = None
) -> dict[str, Any]:
    """Gold-by-predicted counts for the report (gold from ``targets`` when given, else from the scores).

    Returns:
        ``{"labels": [...], "columns": [...labels, "(invalid)"], "matrix": [[int]]}``: row ``i`` is gold
        ``labels[i]``, column ``j`` predicted ``columns[j]``. Gold labels outside the label set are appended to
        ``labels`` (and to ``columns`` before ``(invalid)``).

    Raises:
        ValueError: ``targets`` and ``scores`` differ in length.
    """
    golds = [str(t).strip() for t in targets] if targets is not None else [s["gold"] for s in scores]
    if len(golds) != len(scores):
        raise ValueError(f"{len(scores)} scores for {len(golds)} targets")
    labels = list(ctx.labels or []) + sorted(set(golds) - set(ctx.labels or []))
    columns = [*labels, INVALID]
    row_of = {label: i for i, label in enumerate(labels)}
    col_of = {label: i for i, label in enumerate(columns)}
    matrix = [[0] * len(columns) for _ in labels]
    for gold, score in zip(golds, scores, strict=True):
        predicted = score["predicted"] if score["predicted"] is not None else INVALID
        matrix[row_of[gold]][col_of[predicted]] += 1
    return {"labels": labels, "columns": columns, "matrix": matrix}
