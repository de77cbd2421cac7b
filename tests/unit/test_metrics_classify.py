"""Classification: output -> label mapping, accuracy, macro F1, confusion matrix."""

from __future__ import annotations

import pytest

from tunewise.metrics import MetricContext, confusion_matrix, map_label, score_outputs, summarize_scores

LABELS = ["card_arrival", "card_linking", "lost_or_stolen_card"]


@pytest.mark.parametrize(
    ("output", "label"),
    [
        ("card_arrival", "card_arrival"),
        ("  Card_Arrival\n", "card_arrival"),
        ('"card arrival."', "card_arrival"),
        ("Lost-or-stolen-card", "lost_or_stolen_card"),
        ("The intent is: card_linking, I think.", "card_linking"),
        ("card_arrival or card_linking", None),  # ambiguous
        ("something else", None),
        ("", None),
        ("cardarrival", None),
    ],
)
def test_map_label(output: str, label: str | None) -> None:
    assert map_label(output, LABELS) == label


def test_contained_label_prefers_the_longest() -> None:
    assert map_label("It is about my card arrival", ["card", "card arrival"]) == "card arrival"
    assert map_label("my card", ["card", "card arrival"]) == "card"


def test_accuracy_macro_f1_confusion_hand_computed() -> None:
    ctx = MetricContext(kind="classify", schema=None, labels=["a", "b", "c"], field_normalizers={})
    results = score_outputs(ctx, ["a", "b", "B", "no idea"], ["a", "a", "b", "c"])
    assert [p for p, _ in results] == ["a", "b", "b", None]
    scores = [s for _, s in results]
    assert scores[1] == {"correct": False, "predicted": "b", "gold": "a", "valid_label": True}
    metrics, per_field = summarize_scores(ctx, scores, samples=300, seed=0)
    assert per_field == {}
    assert metrics["accuracy"].value == pytest.approx(0.5)
    assert metrics["valid_label_rate"].value == pytest.approx(0.75)
    # a: tp1 fn1 -> 2/3; b: tp1 fp1 -> 2/3; c: fn1 -> 0; macro = 4/9
    assert metrics["macro_f1"].value == pytest.approx(4 / 9)
    assert metrics["macro_f1"].ci_low <= 4 / 9 <= metrics["macro_f1"].ci_high
    cm = confusion_matrix(ctx, scores)
    assert cm["columns"] == ["a", "b", "c", "(invalid)"]
    assert cm["matrix"] == [[1, 1, 0, 0], [0, 1, 0, 0], [0, 0, 0, 1]]
    assert confusion_matrix(ctx, scores, ["a", "a", "b", "c"]) == cm


def test_gold_outside_label_set_counts_as_a_miss() -> None:
    ctx = MetricContext(kind="classify", labels=["a", "b"])
    scores = [s for _, s in score_outputs(ctx, ["a", "a"], ["a", "z"])]
    metrics, _ = summarize_scores(ctx, scores, samples=100)
    # a: tp1 fp1 -> 2/3; z: fn1 -> 0; b absent -> excluded
    assert metrics["macro_f1"].value == pytest.approx(1 / 3)
    assert confusion_matrix(ctx, scores)["labels"] == ["a", "b", "z"]


def test_classify_needs_labels() -> None:
    with pytest.raises(ValueError, match="label set"):
        score_outputs(MetricContext(kind="classify"), ["a"], ["a"])
