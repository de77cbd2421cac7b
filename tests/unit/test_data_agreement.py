"""Agreement statistics against hand-computed textbook values, and the majority merge with its queue."""

from __future__ import annotations

import pytest

from tunewise.data.agreement import cohen_kappa, krippendorff_alpha_nominal, merge_annotations
from tunewise.records import Example


def test_cohen_kappa_textbook() -> None:
    # 50 items: both yes 20, A yes/B no 5, A no/B yes 10, both no 15. p_o = 0.7, p_e = 0.5*0.6 + 0.5*0.4 = 0.5.
    a = ["y"] * 25 + ["n"] * 25
    b = ["y"] * 20 + ["n"] * 5 + ["y"] * 10 + ["n"] * 15
    assert cohen_kappa(a, b) == pytest.approx(0.4)
    assert cohen_kappa(["x", "y"], ["x", "y"]) == 1.0
    assert cohen_kappa(["x", "x"], ["x", "x"]) == 1.0
    with pytest.raises(ValueError):
        cohen_kappa(["x"], [])


def test_krippendorff_alpha_textbook() -> None:
    # Krippendorff (2011), "Computing Krippendorff's alpha-reliability", nominal example: 4 coders, 12 units,
    # missing values; alpha = 0.743.
    n = None
    coders = [
        [1, 2, 3, 3, 2, 1, 4, 1, 2, n, n, n],
        [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, n, 3],
        [n, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, n],
        [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, n],
    ]
    assert krippendorff_alpha_nominal(list(zip(*coders, strict=True))) == pytest.approx(0.743, abs=5e-4)


def test_krippendorff_alpha_two_coders_hand_computed() -> None:
    # Units (a,a) (a,b) (b,b): coincidences o_aa=2, o_ab=o_ba=1, o_bb=2; n_a=n_b=3, n=6.
    # alpha = 1 - (n-1) * D_o / sum n_c n_k = 1 - 5 * 2 / 18 = 4/9.
    assert krippendorff_alpha_nominal([["a", "a"], ["a", "b"], ["b", "b"]]) == pytest.approx(4 / 9)
    assert krippendorff_alpha_nominal([["a", "a"], ["a", None]]) == 1.0
    with pytest.raises(ValueError):
        krippendorff_alpha_nominal([["a"], [None, "b"]])


def _ann(item: str, target: object) -> Example:
    return Example(id=item, messages=[{"role": "user", "content": f"text {item}"}], target=target)


def test_merge_majority_and_queue() -> None:
    annotated = {
        "1": [
            ("ann1", _ann("1", {"company": "A", "total": "1"})),
            ("ann2", _ann("1", {"company": "A", "total": "2"})),
            ("ann3", _ann("1", {"company": "A", "total": "2"})),
        ],
        "2": [("ann1", _ann("2", {"company": "B", "total": "5"})), ("ann2", _ann("2", {"company": "C", "total": "5"}))],
    }
    merged, agreement, queue = merge_annotations(annotated)
    assert merged[0].target == {"company": "A", "total": "2"}
    assert merged[1].target == {"company": "B", "total": "5"}  # tie: ann1 sorts first
    assert {(q["id"], q["field"]) for q in queue} == {("1", "total"), ("2", "company")}
    assert agreement.annotators == ["ann1", "ann2", "ann3"] and agreement.disagreements == 2
    assert agreement.per_field["total"].items == 2
    assert agreement.per_field["total"].cohen_kappa is None  # three annotators: kappa is for pairs


def test_merge_two_annotators_reports_kappa() -> None:
    labels = [("y", "y"), ("y", "n"), ("n", "n"), ("n", "n")]
    annotated = {str(i): [("a", _ann(str(i), x)), ("b", _ann(str(i), y))] for i, (x, y) in enumerate(labels)}
    _, agreement, queue = merge_annotations(annotated)
    assert agreement.per_field["label"].cohen_kappa == pytest.approx(
        cohen_kappa([x for x, _ in labels], [y for _, y in labels]), abs=1e-4
    )
    assert [q["id"] for q in queue] == ["1"]
