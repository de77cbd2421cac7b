"""The runner-facing API: context from a project, example values, paired comparisons of scores."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from tunewise.config import project_from_dict
from tunewise.errors import InputError
from tunewise.metrics import (
    MetricContext,
    example_values,
    metric_value,
    paired_compare_scores,
    score_outputs,
    summarize_scores,
)

SCHEMA = {"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "string"}}, "required": ["a", "b"]}


def _project(tmp_path: Path, **task: object) -> object:
    raw = {"name": "t", "task": {"kind": "extract", "output_schema": SCHEMA, **task}, "data": {}}
    return project_from_dict(raw, tmp_path)


def test_from_project(tmp_path: Path) -> None:
    ctx = MetricContext.from_project(_project(tmp_path, field_normalizers={"b": "money"}, fuzzy_threshold=0.7))
    assert (ctx.kind, ctx.fields, ctx.field_normalizers, ctx.fuzzy_threshold) == (
        "extract",
        ["a", "b"],
        {"b": "money"},
        0.7,
    )
    [(_, scores)] = score_outputs(ctx, ['{"a": "x", "b": "RM 1"}'], [{"a": "X", "b": "1.00"}])
    assert scores["exact_match"]


def test_bad_normalisers_are_input_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"task.field_normalizers.b: unknown normaliser 'cash'"):
        MetricContext.from_project(_project(tmp_path, field_normalizers={"b": "cash"}))
    with pytest.raises(InputError, match=r"task.field_normalizers.zz: not a field of the output schema"):
        MetricContext.from_project(_project(tmp_path, field_normalizers={"zz": "text"}))
    with pytest.raises(InputError, match="unknown task kind"):
        MetricContext(kind="translate")


def test_length_mismatch_and_empty_summary() -> None:
    ctx = MetricContext(kind="classify", labels=["x"])
    with pytest.raises(ValueError, match="2 outputs for 1 targets"):
        score_outputs(ctx, ["x", "x"], ["x"])
    with pytest.raises(ValueError, match="zero examples"):
        summarize_scores(ctx, [])


def test_example_values_mean_equals_metric_with_same_fields() -> None:
    ctx = MetricContext(kind="extract", schema=SCHEMA)
    outputs = ['{"a": "1", "b": "2"}', '{"a": "1", "b": "0"}', "garbage", '{"a": "0"}']
    targets = [{"a": "1", "b": "2"}] * 4
    scores = [s for _, s in score_outputs(ctx, outputs, targets)]
    metrics, _ = summarize_scores(ctx, scores, samples=100)
    values = example_values(ctx, scores, "field_accuracy")
    assert values.tolist() == [1.0, 0.5, 0.0, 0.0]  # the per-example fraction of fields correct
    for name in ("json_parse_rate", "schema_valid_rate", "field_accuracy", "micro_f1", "exact_match"):
        assert example_values(ctx, scores, name).mean() == pytest.approx(metrics[name].value)
    assert example_values(ctx, scores, "field:a").tolist() == [1.0, 1.0, 0.0, 0.0]


def test_example_values_mean_equals_micro_when_field_counts_differ() -> None:
    ctx = MetricContext(kind="extract")  # no schema: fields come from each gold object
    scores = [
        s for _, s in score_outputs(ctx, ['{"a": 1}', '{"a": 1, "b": 2, "c": 0}'], [{"a": 1}, {"a": 1, "b": 2, "c": 3}])
    ]
    metrics, per_field = summarize_scores(ctx, scores, samples=100)
    assert metrics["field_accuracy"].value == pytest.approx(3 / 4)  # micro: 1 + 2 of 4 fields
    assert example_values(ctx, scores, "field_accuracy").mean() == pytest.approx(3 / 4)
    assert per_field["b"].n == 1 and per_field["a"].n == 2


def test_unknown_and_non_mean_metrics() -> None:
    ctx = MetricContext(kind="classify", labels=["x", "y"])
    scores = [s for _, s in score_outputs(ctx, ["x", "y"], ["x", "x"])]
    with pytest.raises(ValueError, match=r"unknown metric 'rouge_l'.*accuracy"):
        example_values(ctx, scores, "rouge_l")
    with pytest.raises(ValueError, match="extract only"):
        example_values(ctx, scores, "field:a")
    assert example_values(ctx, scores, "macro_f1") is None  # not a mean: the runner skips it
    assert metric_value(ctx, scores, "macro_f1") == pytest.approx((2 / 3 + 0) / 2)
    assert metric_value(ctx, scores, "accuracy") == 0.5
    generate = MetricContext(kind="generate", use_embeddings=False)
    text_scores = [s for _, s in score_outputs(generate, ["a"], ["a"])]
    assert example_values(generate, text_scores, "embedding_cosine") is None  # not computed
    assert example_values(generate, text_scores, "rouge_l").tolist() == [1.0]
    with pytest.raises(ValueError, match="not computed"):
        paired_compare_scores(generate, "embedding_cosine", "a", "b", text_scores, text_scores)


def test_paired_compare_scores_dispatch() -> None:
    ctx = MetricContext(kind="classify", labels=["x", "y"])
    targets = ["x", "y"] * 20
    worse = [s for _, s in score_outputs(ctx, ["x"] * 40, targets)]
    better = [s for _, s in score_outputs(ctx, targets, targets)]
    acc = paired_compare_scores(ctx, "accuracy", "base", "tuned", worse, better, samples=300)
    assert acc.test == "mcnemar_exact" and acc.diff == pytest.approx(0.5) and acc.p_value < 1e-5
    macro = paired_compare_scores(ctx, "macro_f1", "base", "tuned", worse, better, samples=300)
    assert macro.test == "paired_bootstrap"
    assert macro.diff == pytest.approx(1 - (2 / 3) / 2)  # worse: x F1 = 2/3, y F1 = 0
    assert macro.p_value < 0.01


def test_summary_at_banking_scale(shared_data: Path) -> None:
    labels = json.loads((shared_data / "banking77" / "labels.json").read_text())
    rng = np.random.default_rng(0)
    gold = [labels[i] for i in rng.integers(0, len(labels), 1000)]
    outputs = [g if rng.random() < 0.7 else labels[0] for g in gold]
    ctx = MetricContext(kind="classify", labels=labels)
    scores = [s for _, s in score_outputs(ctx, outputs, gold)]
    metrics, _ = summarize_scores(ctx, scores, samples=1000, seed=0)
    accuracy = metrics["accuracy"]
    assert accuracy.n == 1000 and accuracy.value == np.mean([o == g for o, g in zip(outputs, gold, strict=True)])
    assert accuracy.ci_low < accuracy.value < accuracy.ci_high
    # normal approximation: 2 * 1.96 * sqrt(0.7 * 0.3 / 1000) = 0.057
    assert accuracy.ci_high - accuracy.ci_low == pytest.approx(0.057, abs=0.01)
    assert metrics["macro_f1"].ci_low < metrics["macro_f1"].value < metrics["macro_f1"].ci_high


def test_no_torch_at_import() -> None:
    """A fresh interpreter: importing the metrics must not pull in torch (embeddings load lazily)."""
    import subprocess

    code = "import sys, tunewise.metrics; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "False"
