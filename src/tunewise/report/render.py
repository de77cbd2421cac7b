"""Render a run directory (summary.json + predictions.jsonl + examples.jsonl) to report.md and report.html."""

from __future__ import annotations

import base64
import collections
import html
import json
from pathlib import Path
from typing import Any

from tunewise.io.atomic import atomic_write_bytes, atomic_write_text
from tunewise.io.examples import target_text
from tunewise.io.jsonl import read_jsonl
from tunewise.metrics import MetricContext, example_values
from tunewise.records import EvalSummary, Example, Prediction
from tunewise.report import plots

WORST_PER_CANDIDATE = 5
CONFUSION_TOP = 15


def render_report(run_dir: str | Path) -> tuple[Path, Path]:
    """Write ``report.md`` (+ PNG plots) and a self-contained ``report.html`` into ``run_dir``; return both paths."""
    run_dir = Path(run_dir)
    summary = EvalSummary.from_dict(json.loads((run_dir / "summary.json").read_text(encoding="utf-8")))
    predictions = [Prediction.from_dict(row) for _, row in read_jsonl(run_dir / "predictions.jsonl")]
    examples = {}
    if (run_dir / "examples.jsonl").is_file():
        examples = {row["id"]: Example.from_dict(row) for _, row in read_jsonl(run_dir / "examples.jsonl")}
    figures = _figures(summary, predictions, examples)
    for name, png in figures.items():
        atomic_write_bytes(run_dir / f"{name}.png", png)
    sections = _sections(summary, predictions, examples)
    md_path, html_path = run_dir / "report.md", run_dir / "report.html"
    atomic_write_text(md_path, _markdown(summary, sections, figures))
    atomic_write_text(html_path, _html(summary, sections, figures))
    return md_path, html_path


def _fmt(value: float) -> str:
    return f"{value:.3f}"


def _ci(metric: Any) -> str:
    return f"{metric.value:.3f} [{metric.ci_low:.3f}, {metric.ci_high:.3f}]"


def _p(p: float) -> str:
    return "<0.001" if p < 0.001 else f"{p:.3f}"


Table = tuple[list[str], list[list[str]]]


def _sections(summary: EvalSummary, predictions: list[Prediction], examples: dict[str, Example]) -> list[tuple[str, Any]]:
    """(title, content) pairs; content is a table (header, rows), a string, or a list of failure dicts."""
    metric_names = list(dict.fromkeys(name for c in summary.candidates for name in c.metrics))
    quality: Table = (
        ["candidate", "model", "prompt", *metric_names],
        [[c.name, c.model, c.prompt, *[_ci(c.metrics[m]) if m in c.metrics else "—" for m in metric_names]] for c in summary.candidates],
    )
    ops_keys = ["latency_p50_ms", "latency_p95_ms", "prompt_tokens_mean", "completion_tokens_mean", "tokens_per_s", "usd_per_1m_tokens", "truncated_rate", "tokens_estimated_rate"]
    present = [k for k in ops_keys if any(k in c.operational for c in summary.candidates)]
    operational: Table = (
        ["candidate", *present],
        [[c.name, *[_fmt(c.operational[k]) if k in c.operational else "—" for k in present]] for c in summary.candidates],
    )
    paired: Table = (
        ["comparison", "metric", "difference (b − a) [95% CI]", "p-value", "test", "n"],
        [
            [f"{p.b} vs {p.a}", p.metric, f"{p.diff:+.3f} [{p.ci_low:+.3f}, {p.ci_high:+.3f}]", _p(p.p_value), p.test, str(p.n)]
            for p in summary.comparisons
        ],
    )
    sections: list[tuple[str, Any]] = [("Quality (95% bootstrap CIs)", quality)]
    fields = sorted({f for c in summary.candidates for f in c.per_field})
    if fields:
        per_field: Table = (
            ["candidate", *fields],
            [[c.name, *[_ci(c.per_field[f]) if f in c.per_field else "—" for f in fields]] for c in summary.candidates],
        )
        sections.append(("Per-field accuracy", per_field))
    sections += [("Paired comparisons", paired), ("Operational", operational)]
    if summary.task_kind == "classify":
        sections.append(("Most frequent confusions", _confusions(predictions, examples)))
    sections.append(("Worst failures", _worst(summary, predictions, examples)))
    return sections


def _confusions(predictions: list[Prediction], examples: dict[str, Example]) -> Table:
    counts: collections.Counter[tuple[str, str, str]] = collections.Counter()
    for p in predictions:
        gold = examples[p.id].target if p.id in examples else None
        predicted = p.scores.get("predicted")
        if gold is not None and predicted != gold:
            counts[(p.candidate, str(gold), str(predicted))] += 1
    rows = [[c, g, pr, str(n)] for (c, g, pr), n in counts.most_common(CONFUSION_TOP)]
    return (["candidate", "gold", "predicted", "count"], rows)


def _worst(summary: EvalSummary, predictions: list[Prediction], examples: dict[str, Example]) -> list[dict[str, str]]:
    labels = None
    if summary.task_kind == "classify":
        # The run directory does not keep the label set; the labels seen as gold or predicted are all scoring needs.
        labels = sorted({str(v) for p in predictions for v in (p.scores.get("gold"), p.scores.get("predicted")) if v is not None})
    context = MetricContext(kind=summary.task_kind, schema=None, labels=labels, field_normalizers={})
    failures = []
    for candidate in summary.candidates:
        mine = [p for p in predictions if p.candidate == candidate.name]
        values = example_values(context, [p.scores for p in mine], summary.primary_metric)
        if values is None:
            continue
        ranked = sorted(zip(values, range(len(mine))), key=lambda pair: (pair[0], pair[1]))
        for value, index in ranked[:WORST_PER_CANDIDATE]:
            if value >= 1.0:
                break
            p = mine[index]
            example = examples.get(p.id)
            user = next((m["content"] for m in reversed(example.messages) if m["role"] == "user"), "") if example else ""
            failures.append(
                {
                    "candidate": candidate.name,
                    "id": p.id,
                    "score": f"{summary.primary_metric} = {value:.2f}",
                    "input": user[:1200],
                    "target": target_text(example) if example else "",
                    "output": p.output[:1200],
                }
            )
    return failures


def _figures(summary: EvalSummary, predictions: list[Prediction], examples: dict[str, Example]) -> dict[str, bytes]:
    figures = {}
    chart = plots.per_field_chart(summary.candidates)
    if chart:
        figures["per_field_accuracy"] = chart
    latencies: dict[str, list[float]] = collections.defaultdict(list)
    for p in predictions:
        latencies[p.candidate].append(p.latency_ms)
    chart = plots.latency_chart(dict(latencies))
    if chart:
        figures["latency"] = chart
    return figures


def _markdown(summary: EvalSummary, sections: list[tuple[str, Any]], figures: dict[str, bytes]) -> str:
    lines = [
        f"# Evaluation report — {summary.split} ({summary.n_examples} examples)",
        "",
        f"- run: `{summary.run_id}` ({summary.created_at}){f', MLflow run `{summary.mlflow_run_id}`' if summary.mlflow_run_id else ''}",
        f"- data: `{summary.data_file}` (sha256 `{summary.data_sha256[:16]}…`)",
        f"- task: {summary.task_kind}; primary metric: **{summary.primary_metric}**",
        "",
    ]
    for title, content in sections:
        lines += [f"## {title}", ""]
        if isinstance(content, tuple):
            header, rows = content
            if not rows:
                lines += ["(none)", ""]
                continue
            lines.append("| " + " | ".join(header) + " |")
            lines.append("|" + "---|" * len(header))
            lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
            lines.append("")
        else:
            for failure in content:
                lines += [
                    f"### {failure['candidate']} — `{failure['id']}` ({failure['score']})",
                    "",
                    "Input:", "```", failure["input"], "```", "Expected:", "```", failure["target"], "```",
                    "Output:", "```", failure["output"], "```", "",
                ]
            if not content:
                lines += ["(no failures)", ""]
        if title == "Per-field accuracy" and "per_field_accuracy" in figures:
            lines += ["![per-field accuracy](per_field_accuracy.png)", ""]
        if title == "Operational" and "latency" in figures:
            lines += ["![latency](latency.png)", ""]
    return "\n".join(lines)


def _html(summary: EvalSummary, sections: list[tuple[str, Any]], figures: dict[str, bytes]) -> str:
    e = html.escape
    body = [
        f"<h1>Evaluation report — {e(summary.split)} ({summary.n_examples} examples)</h1>",
        f"<p>run <code>{e(summary.run_id)}</code> · {e(summary.created_at)} · data <code>{e(summary.data_file)}</code> "
        f"(sha256 <code>{e(summary.data_sha256[:16])}…</code>) · task {e(summary.task_kind)} · primary metric "
        f"<b>{e(summary.primary_metric)}</b></p>",
    ]
    for title, content in sections:
        body.append(f"<h2>{e(title)}</h2>")
        if isinstance(content, tuple):
            header, rows = content
            if rows:
                body.append("<table><tr>" + "".join(f"<th>{e(h)}</th>" for h in header) + "</tr>")
                body += ["<tr>" + "".join(f"<td>{e(cell)}</td>" for cell in row) + "</tr>" for row in rows]
                body.append("</table>")
            else:
                body.append("<p>(none)</p>")
        else:
            for f in content:
                body.append(
                    f"<details><summary><b>{e(f['candidate'])}</b> — <code>{e(f['id'])}</code> ({e(f['score'])})</summary>"
                    f"<div class='cols'><div><h4>Input</h4><pre>{e(f['input'])}</pre></div>"
                    f"<div><h4>Expected</h4><pre>{e(f['target'])}</pre><h4>Output</h4><pre>{e(f['output'])}</pre></div></div></details>"
                )
            if not content:
                body.append("<p>(no failures)</p>")
        figure = {"Per-field accuracy": "per_field_accuracy", "Operational": "latency"}.get(title)
        if figure in figures:
            data = base64.b64encode(figures[figure]).decode()
            body.append(f"<img alt='{e(figure)}' src='data:image/png;base64,{data}'>")
    style = (
        "body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
        "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:4px 8px;font-size:14px}"
        "th{background:#f3f3f3}pre{white-space:pre-wrap;background:#f8f8f8;padding:6px;font-size:12px}"
        ".cols{display:flex;gap:1em}.cols>div{flex:1}img{max-width:100%}"
    )
    return f"<!doctype html><html><head><meta charset='utf-8'><title>tunewise report</title><style>{style}</style></head><body>{''.join(body)}</body></html>"
