"""The shared report renderer: templates ship with the package, HTML is autoescaped, Markdown is left as written."""

from __future__ import annotations

import base64
import dataclasses
import importlib.resources
import json
import re
from pathlib import Path

from tests.support.decisions import sample_cost, sample_estimate
from tests.support.receipts import ROWS, SCHEMA, right_answer
from tunewise.config import project_from_dict
from tunewise.decide import TREE, NodeAnswer
from tunewise.decide.record import Decision
from tunewise.decide.report import to_html, to_markdown, tree_svg
from tunewise.eval import evaluate
from tunewise.models import MockBackend
from tunewise.report import render_report
from tunewise.report.page import render_page

HOSTILE = "<script>alert(1)</script>"
PLACEHOLDER = "hostile-candidate"


def test_templates_ship_with_the_package() -> None:
    folder = importlib.resources.files("tunewise").joinpath("report/templates")
    names = {entry.name for entry in folder.iterdir()}
    assert {"base.html", "eval.html", "eval.md.j2", "decision.html", "decision.md.j2", "decision_tree.svg"} <= names
    assert {"pipeline.html", "pipeline.md.j2", "parity.html", "parity.md.j2", "sweep.html", "sweep.md.j2"} <= names


def test_html_is_autoescaped_and_markdown_is_not() -> None:
    row = {"stage": "evaluate", "seconds": 1.4, "outcome": f"a | {HOSTILE}", "report": "/r/report.html"}
    rows = [{**row, "report_name": "report.html"}]
    html = render_page("pipeline.html", project=HOSTILE, rows=rows)
    markdown = render_page("pipeline.md.j2", project=HOSTILE, rows=rows)
    assert "<script" not in html and html.count("&lt;script&gt;alert(1)&lt;/script&gt;") == 2
    assert html.startswith("<!doctype html>") and "<style>" in html  # the shared base page
    assert markdown == (
        f"# tunewise pipeline — {HOSTILE}\n\nZero-egress guard: off.\n\n"
        "| stage | time | outcome | report |\n|---|---|---|---|\n"
        f"| evaluate | 1 s | a / {HOSTILE} | `/r/report.html` |\n"
    )


def _hostile_eval(tmp_path: Path) -> Path:
    """Two candidates on the receipts (one named like an injection) and an input that is one too."""
    rows = [*ROWS[:3], {**ROWS[3], "text": f"{HOSTILE} total 100.00"}]
    (tmp_path / "dev.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    spec = {
        "name": "t",
        "task": {"kind": "extract", "instructions": "Extract.", "output_schema": SCHEMA},
        "data": {"dev": "dev.jsonl", "input_field": "text", "target_field": "fields"},
        "models": {"echo": {"backend": "mock", "outputs": ["x"]}, "bad": {"backend": "mock", "outputs": ["x"]}},
        "candidates": [{"name": PLACEHOLDER, "model": "echo"}, {"name": "poor", "model": "bad"}],
        "eval": {"bootstrap_samples": 100},
    }
    poor = MockBackend(['{"company": "ACME SDN BHD"}', "no json"])
    backends = {"echo": MockBackend(respond=right_answer), "bad": poor}
    run = tmp_path / "run"
    evaluate(project_from_dict(spec, tmp_path), out=run, backends=backends, track=False, progress=False)
    # Specs only accept identifiers as candidate names; a run directory written by hand (or by an older version)
    # may hold anything, and the renderer must escape it all the same.
    for name in ("summary.json", "predictions.jsonl"):
        (run / name).write_text((run / name).read_text().replace(PLACEHOLDER, json.dumps(HOSTILE)[1:-1]))
    render_report(run)
    return run


def test_eval_report_has_its_tables_and_plots_and_escapes_what_it_shows(tmp_path: Path) -> None:
    run = _hostile_eval(tmp_path)
    html = (run / "report.html").read_text()
    titles = re.findall(r"<h2>(.*?)</h2>", html)
    sections = [
        "Quality (95% bootstrap CIs)",
        "Per-field accuracy",
        "Paired comparisons",
        "Operational",
        "Worst failures",
    ]
    assert titles == sections
    assert html.count("<table>") == 4 and "<th>field_accuracy</th>" in html and "<th>latency_p95_ms</th>" in html
    assert "<script" not in html
    assert "<td>&lt;script&gt;alert(1)&lt;/script&gt;</td>" in html  # the candidate's row
    assert "<pre>&lt;script&gt;alert(1)&lt;/script&gt; total 100.00</pre>" in html  # a failure's input
    for name in ("per_field_accuracy", "latency"):
        embedded = re.search(rf'<img alt="{name}" src="data:image/png;base64,([^"]+)">', html)
        assert embedded is not None, name
        assert base64.b64decode(embedded.group(1)) == (run / f"{name}.png").read_bytes()

    markdown = (run / "report.md").read_text()
    assert f"| {HOSTILE} | echo | zero_shot |" in markdown  # Markdown is not HTML-escaped
    assert "![per-field accuracy](per_field_accuracy.png)" in markdown and "![latency](latency.png)" in markdown
    assert markdown.endswith("```\n") and not markdown.endswith("\n\n")


def _decision(**fields: object) -> Decision:
    answers = [NodeAnswer(n.id, "yes" if n.id == "structured_output" else "no", f"{n.id} {HOSTILE}") for n in TREE]
    return Decision(
        project=HOSTILE,
        created_at="2026-01-01T00:00:00",
        decision_id="id1",
        recommendation="fine_tune",
        summary=f"summary {HOSTILE}",
        path=["knowledge", "structured_output"],
        answers=answers,
        runner_up="do_not_fine_tune",
        runner_up_reason="r",
        next_command="tunewise train .",
        metric="accuracy",
        threshold=0.8,
        **fields,  # type: ignore[arg-type]
    )


def test_decision_page_escapes_the_tree_and_the_report() -> None:
    d = _decision()
    page, svg = to_html(d), tree_svg(d)
    assert "<script" not in page and "<script" not in svg
    assert "<title>tunewise decide: &lt;script&gt;" in page and "<svg" in page and "</svg>" in page
    assert "<title>Does the model need to know domain facts it lacks?: NO: knowledge &lt;script&gt;" in svg
    assert f"# Decision for {HOSTILE}: Fine-tune" in to_markdown(d)


def test_decision_markdown_reads_sufficiency_and_cost_as_records_or_as_dicts() -> None:
    estimate, cost = sample_estimate(), sample_cost()
    as_records = to_markdown(_decision(sufficiency=estimate, cost=cost))
    as_dicts = to_markdown(_decision(sufficiency=dataclasses.asdict(estimate), cost=dataclasses.asdict(cost)))
    assert as_records == as_dicts
    assert "Points: n=32: 0.596, n=64: 0.700, n=128: 0.773." in as_records
    assert "- Compute: 400 examples × 120 tokens × 3 epochs = 144,600 tokens at 250 tokens/s" in as_records
