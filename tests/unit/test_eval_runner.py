"""The eval runner end to end on the mock backend: run directory, metrics, paired tests, cache, atomicity."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.receipts import ROWS, receipts_project, right_answer
from tunewise.config import project_from_dict
from tunewise.errors import InputError
from tunewise.eval import evaluate
from tunewise.models import MockBackend


def test_run_directory_metrics_and_paired_test(tmp_path: Path) -> None:
    project = receipts_project(tmp_path)
    backends = {
        "echo": MockBackend(respond=right_answer),
        "bad": MockBackend(['{"company": "ACME SDN BHD"}', "no json"]),
    }
    summary = evaluate(project, out=tmp_path / "run", backends=backends, track=False, progress=False)

    good, poor = summary.candidate("good"), summary.candidate("poor")
    assert good.metrics["field_accuracy"].value == 1.0
    assert good.metrics["schema_valid_rate"].value == 1.0
    # poor: a, c get '{"company": "ACME SDN BHD"}' (schema-invalid: no total); b, d get prose.
    # Only a's company is right.
    assert poor.metrics["field_accuracy"].value == pytest.approx(1 / 8)
    assert poor.metrics["json_parse_rate"].value == 0.5
    assert poor.per_field["company"].value == 0.25
    # the k-shot prompt carried two solved examples before the input
    assert len(backends["bad"].calls[0]) == 1 + 2 * 2 + 1
    (comparison,) = [c for c in summary.comparisons if c.metric == "field_accuracy"]
    assert (comparison.a, comparison.b) == ("good", "poor")
    assert comparison.diff == pytest.approx(1 / 8 - 1)
    assert good.operational["truncated_rate"] == 0.0

    run = tmp_path / "run"
    predictions = [json.loads(line) for line in (run / "predictions.jsonl").read_text().splitlines()]
    assert len(predictions) == 8
    assert set(predictions[0]) >= {
        "id",
        "candidate",
        "output",
        "parsed",
        "latency_ms",
        "prompt_tokens",
        "completion_tokens",
    }
    assert predictions[0]["parsed"] == {"company": "ACME SDN BHD", "total": "RM 9.00"}
    assert json.loads((run / "summary.json").read_text())["n_examples"] == 4
    assert "field_accuracy" in (run / "report.md").read_text()
    assert (run / "report.html").read_text().startswith("<!doctype html>")
    assert (run / "config.yaml").is_file()


def test_outputs_cut_by_max_new_tokens_are_counted(tmp_path: Path) -> None:
    project = receipts_project(tmp_path)
    project.spec = project.spec.model_copy(update={"eval": project.spec.eval.model_copy(update={"max_new_tokens": 4})})
    backends = {"echo": MockBackend(respond=right_answer), "bad": MockBackend(["short", "one two three four five six"])}
    summary = evaluate(project, backends=backends, track=False, progress=False)
    assert summary.candidate("good").operational["truncated_rate"] == 1.0  # every JSON answer is longer than 4 words
    assert summary.candidate("poor").operational["truncated_rate"] == 0.5
    assert summary.candidate("good").metrics["json_parse_rate"].value == 0.0


def test_rerun_reuses_cached_predictions(tmp_path: Path) -> None:
    project = receipts_project(tmp_path)
    first = MockBackend(respond=right_answer)
    evaluate(project, candidates=[project.spec.candidates[0]], backends={"echo": first}, track=False, progress=False)
    assert len(first.calls) == 4
    second = MockBackend(respond=right_answer)
    summary = evaluate(
        project, candidates=[project.spec.candidates[0]], backends={"echo": second}, track=False, progress=False
    )
    assert second.calls == []
    assert summary.candidate("good").metrics["field_accuracy"].value == 1.0


def test_limit_and_data_override(tmp_path: Path) -> None:
    project = receipts_project(tmp_path)
    other = tmp_path / "other.jsonl"
    other.write_text(json.dumps(ROWS[1]) + "\n" + json.dumps(ROWS[2]) + "\n")
    summary = evaluate(
        project,
        data_path=other,
        limit=1,
        candidates=[project.spec.candidates[0]],
        backends={"echo": MockBackend(respond=right_answer)},
        track=False,
        progress=False,
    )
    assert summary.n_examples == 1 and summary.split == "other"


def test_bad_data_leaves_no_run_directory(tmp_path: Path) -> None:
    project = receipts_project(tmp_path)
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(ROWS[0]) + "\n{not json\n")
    with pytest.raises(InputError) as error:
        evaluate(
            project,
            data_path=bad,
            out=tmp_path / "run",
            backends={"echo": MockBackend(["x"])},
            track=False,
            progress=False,
        )
    assert f"{bad}:2:" in str(error.value)
    assert not (tmp_path / "run").exists()


def test_gold_target_that_breaks_the_schema_is_refused_before_generating(tmp_path: Path) -> None:
    from tunewise.data.check import check_files

    project = receipts_project(tmp_path)
    rows = [*ROWS[:2], {**ROWS[2], "fields": {"company": "GAMMA MART", "total": 3.1}}, ROWS[3]]
    dev = tmp_path / "dev.jsonl"
    dev.write_text("".join(json.dumps(r) + "\n" for r in rows))
    backends = {"echo": MockBackend(respond=right_answer), "bad": MockBackend(["x"])}
    with pytest.raises(InputError) as error:
        evaluate(project, out=tmp_path / "run", backends=backends, track=False, progress=False)
    assert (error.value.file, error.value.line, error.value.field) == (str(dev), 3, "fields.total")
    assert str(error.value) == check_files(project, [dev]).problems[0]  # the message ``data check`` gives
    assert backends["echo"].calls == [] and backends["bad"].calls == []
    assert not (tmp_path / "run").exists()


def test_failing_backend_leaves_no_run_directory(tmp_path: Path) -> None:
    from tunewise.errors import BackendError

    def fail(conversation: list[dict[str, str]]) -> str:
        raise BackendError("boom", url="http://127.0.0.1:9/v1/chat/completions", status=503)

    project = receipts_project(tmp_path)
    with pytest.raises(BackendError, match="HTTP 503"):
        evaluate(
            project,
            out=tmp_path / "run",
            backends={"echo": MockBackend(respond=fail), "bad": MockBackend(["x"])},
            track=False,
            progress=False,
        )
    assert not (tmp_path / "run").exists()


def test_classify_run_renders_report_with_failures(tmp_path: Path) -> None:
    rows = [
        {"id": str(i), "text": t, "label": label}
        for i, (t, label) in enumerate([("yes please", "yes"), ("no way", "no"), ("hmm", "maybe")])
    ]
    (tmp_path / "dev.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    spec = {
        "name": "c",
        "task": {"kind": "classify", "labels": ["yes", "no", "maybe"]},
        "data": {"dev": "dev.jsonl", "target_field": "label"},
        "models": {"m": {"backend": "mock", "outputs": ["x"]}},
        "candidates": [{"name": "always-yes", "model": "m"}],
    }
    project = project_from_dict(spec, tmp_path)
    summary = evaluate(
        project, out=tmp_path / "run", backends={"m": MockBackend(["Yes."])}, track=False, progress=False
    )
    assert summary.candidate("always-yes").metrics["accuracy"].value == pytest.approx(1 / 3)
    report = (tmp_path / "run" / "report.md").read_text()
    assert "Most frequent confusions" in report and "| always-yes | no | yes | 1 |" in report
    assert "### always-yes — `1`" in report
