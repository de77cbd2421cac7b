"""Render a run directory (summary.json + predictions.jsonl + examples.jsonl) to report.md and report.html."""

from __future__ import annotations

import collections
import json
from dataclasses import dataclass, field
from pathlib import Path

from tunewise.errors import InputError
from tunewise.examples import target_text
from tunewise.io.atomic import atomic_write_bytes
from tunewise.io.jsonl import read_jsonl
from tunewise.metrics import MetricContext, example_values
from tunewise.records import EvalSummary, Example, MetricValue, Prediction
from tunewise.report import plots
from tunewise.report.page import Table, render_page, write_report

WORST_PER_CANDIDATE = 5
CONFUSION_TOP = 15


@dataclass(frozen=True)
class Figure:
    """A plot: written beside the Markdown as ``<name>.png``, embedded in the HTML (``name`` is its alt text)."""

    name: str
    caption: str
    png: bytes


@dataclass(frozen=True)
class Section:
    """One titled part of the report: a table, or (``table`` is ``None``) the worst failures; a plot may follow."""

    title: str
    table: Table | None = None
    failures: list[dict[str, str]] = field(default_factory=list)
    figure: Figure | None = None


def render_report(run_dir: str | Path) -> tuple[Path, Path]:
    """Write ``report.md`` (+ PNG plots) and a self-contained ``report.html`` into ``run_dir``; return both paths."""
    run_dir = Path(run_dir)
    if not (run_dir / "summary.json").is_file():
        raise InputError("not a run directory (no summary.json)", file=run_dir)
    summary = EvalSummary.from_dict(json.loads((run_dir / "summary.json").read_text(encoding="utf-8")))
    predictions = [Prediction.from_dict(row) for _, row in read_jsonl(run_dir / "predictions.jsonl")]
    examples = {}
    if (run_dir / "examples.jsonl").is_file():
        examples = {row["id"]: Example.from_dict(row) for _, row in read_jsonl(run_dir / "examples.jsonl")}
    figures = _figures(summary, predictions)
    for figure in figures.values():
        atomic_write_bytes(run_dir / f"{figure.name}.png", figure.png)
    context = {
        "summary": summary,
        "sections": _sections(summary, predictions, examples, figures),
        "egress_guard": summary.egress_guard,
    }
    return write_report(run_dir, render_page("eval.md.j2", **context), render_page("eval.html", **context))


def _fmt(value: float) -> str:
    return f"{value:.3f}"


def _ci(metric: MetricValue) -> str:
    return f"{metric.value:.3f} [{metric.ci_low:.3f}, {metric.ci_high:.3f}]"


def _p(p: float) -> str:
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def _sections(
    summary: EvalSummary, predictions: list[Prediction], examples: dict[str, Example], figures: dict[str, Figure]
) -> list[Section]:
    """The report's sections in order; the per-field plot follows its table, the latency plot the operational one."""
    metric_names = list(dict.fromkeys(name for c in summary.candidates for name in c.metrics))
    quality = Table(
        ["candidate", "model", "prompt", *metric_names],
        [
            [c.name, c.model, c.prompt, *[_ci(c.metrics[m]) if m in c.metrics else "—" for m in metric_names]]
            for c in summary.candidates
        ],
    )
    ops_keys = [
        "latency_p50_ms",
        "latency_p95_ms",
        "prompt_tokens_mean",
        "completion_tokens_mean",
        "tokens_per_s",
        "usd_per_1m_tokens",
        "truncated_rate",
        "tokens_estimated_rate",
    ]
    present = [k for k in ops_keys if any(k in c.operational for c in summary.candidates)]
    operational = Table(
        ["candidate", *present],
        [
            [c.name, *[_fmt(c.operational[k]) if k in c.operational else "—" for k in present]]
            for c in summary.candidates
        ],
    )
    paired = Table(
        ["comparison", "metric", "difference (b − a) [95% CI]", "p-value", "test", "n"],
        [
            [
                f"{p.b} vs {p.a}",
                p.metric,
                f"{p.diff:+.3f} [{p.ci_low:+.3f}, {p.ci_high:+.3f}]",
                _p(p.p_value),
                p.test,
                str(p.n),
            ]
            for p in summary.comparisons
        ],
    )
    sections = [Section("Quality (95% bootstrap CIs)", quality)]
    fields = sorted({f for c in summary.candidates for f in c.per_field})
    if fields:
        per_field = Table(
            ["candidate", *fields],
            [[c.name, *[_ci(c.per_field[f]) if f in c.per_field else "—" for f in fields]] for c in summary.candidates],
        )
        sections.append(Section("Per-field accuracy", per_field, figure=figures.get("per_field_accuracy")))
    sections += [
        Section("Paired comparisons", paired),
        Section("Operational", operational, figure=figures.get("latency")),
    ]
    if summary.task_kind == "classify":
        sections.append(Section("Most frequent confusions", _confusions(predictions, examples)))
    sections.append(Section("Worst failures", failures=_worst(summary, predictions, examples)))
    return sections


def _confusions(predictions: list[Prediction], examples: dict[str, Example]) -> Table:
    counts: collections.Counter[tuple[str, str, str]] = collections.Counter()
    for p in predictions:
        gold = examples[p.id].target if p.id in examples else None
        predicted = p.scores.get("predicted")
        if gold is not None and predicted != gold:
            counts[(p.candidate, str(gold), str(predicted))] += 1
    rows = [[c, g, pr, str(n)] for (c, g, pr), n in counts.most_common(CONFUSION_TOP)]
    return Table(["candidate", "gold", "predicted", "count"], rows)


def _worst(summary: EvalSummary, predictions: list[Prediction], examples: dict[str, Example]) -> list[dict[str, str]]:
    labels = None
    if summary.task_kind == "classify":
        # The run directory does not keep the label set; the labels seen as gold or predicted are all scoring needs.
        labels = sorted(
            {str(v) for p in predictions for v in (p.scores.get("gold"), p.scores.get("predicted")) if v is not None}
        )
    context = MetricContext(kind=summary.task_kind, schema=None, labels=labels, field_normalizers={})
    failures = []
    for candidate in summary.candidates:
        mine = [p for p in predictions if p.candidate == candidate.name]
        values = example_values(context, [p.scores for p in mine], summary.primary_metric)
        if values is None:
            continue
        ranked = sorted(zip(values, range(len(mine)), strict=False), key=lambda pair: (pair[0], pair[1]))
        for value, index in ranked[:WORST_PER_CANDIDATE]:
            if value >= 1.0:
                break
            p = mine[index]
            example = examples.get(p.id)
            user = (
                next((m["content"] for m in reversed(example.messages) if m["role"] == "user"), "") if example else ""
            )
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


def _figures(summary: EvalSummary, predictions: list[Prediction]) -> dict[str, Figure]:
    figures = {}
    chart = plots.per_field_chart(summary.candidates)
    if chart:
        figures["per_field_accuracy"] = Figure("per_field_accuracy", "per-field accuracy", chart)
    latencies: dict[str, list[float]] = collections.defaultdict(list)
    for p in predictions:
        latencies[p.candidate].append(p.latency_ms)
    chart = plots.latency_chart(dict(latencies))
    if chart:
        figures["latency"] = Figure("latency", "latency", chart)
    return figures
