"""The distillation report (Markdown + HTML with a chart) and its MLflow run."""

from __future__ import annotations

from pathlib import Path

from tunewise.config import Project
from tunewise.distill.filters import REASONS
from tunewise.distill.record import DistillResult, SideBySide
from tunewise.io.atomic import atomic_write_bytes
from tunewise.records import MetricValue
from tunewise.report.page import Table, money, render_page, write_report
from tunewise.report.plots import png_bytes
from tunewise.tracking import _mlflow, metric_key, start_run

CHART = "distill.png"


def headline(result: DistillResult) -> str:
    """The answer in one sentence: how much of the teacher's quality the student keeps, at what speed and cost."""
    student, teacher = result.side("student"), result.side("teacher")
    if student is None or teacher is None:
        return f"Distillation {result.name}: {result.status}."
    ratio = result.quality_ratio
    kept = (
        f"keeps {ratio.value:.0%} of the teacher's {result.metric} (95% CI {ratio.ci_low:.0%}–{ratio.ci_high:.0%})"
        if ratio is not None
        else f"scores {student.quality.value:.3f} against the teacher's {teacher.quality.value:.3f}"
    )
    parts = [f"The student {kept}"]
    if result.prompt_tokens_ratio is not None:
        parts.append(f"with {result.prompt_tokens_ratio:.2f}× the prompt tokens")
    if result.latency_p50_ratio is not None:
        parts.append(f"{result.latency_p50_ratio:.2f}× the median latency")
    if result.cost_ratio is not None:
        parts.append(f"{result.cost_ratio:.2f}× the cost per request")
    spend = f"; labelling cost {usd(result.labels.usd)}" if result.labels.usd else ""
    return ", ".join(parts) + f" ({result.labels.labelled:,} teacher labels{spend})."


def usd(value: float | None) -> str:
    """Dollars, with the significant digits of small amounts (a cent per 1,000 requests is not $0.00)."""
    if value is None:
        return "unknown"
    return money(value) if value == 0 or abs(value) >= 0.01 else f"${value:.2g}"


def _ci(value: MetricValue) -> str:
    return f"{value.value:.3f} [{value.ci_low:.3f}, {value.ci_high:.3f}]"


def _sides(result: DistillResult) -> Table:
    rows = [
        [
            side.name,
            side.role,
            _ci(side.quality),
            f"{side.latency_p50_ms:,.0f}",
            f"{side.latency_p95_ms:,.0f}",
            f"{side.prompt_tokens_mean:,.0f}",
            f"{side.completion_tokens_mean:,.1f}",
            usd(side.usd_per_1m_tokens),
            usd(side.usd_per_1k_requests),
        ]
        for side in result.candidates
    ]
    header = [
        "model",
        "role",
        f"{result.metric} [95% CI]",
        "p50 ms",
        "p95 ms",
        "prompt tokens",
        "completion tokens",
        "$/1M tokens",
        "$/1k requests",
    ]
    return Table(header, rows)


def _ratios(result: DistillResult) -> Table:
    rows = []
    if result.quality_ratio is not None:
        rows.append([f"{result.metric} (paired bootstrap)", _ci(result.quality_ratio)])
    for label, value in (
        ("latency p50", result.latency_p50_ratio),
        ("latency p95", result.latency_p95_ratio),
        ("prompt tokens per request", result.prompt_tokens_ratio),
        ("$ per 1,000 requests", result.cost_ratio),
    ):
        if value is not None:
            rows.append([label, f"{value:.3f}"])
    return Table(["student / teacher", "ratio"], rows)


def _labelling(result: DistillResult) -> Table:
    s = result.labels
    rows = [
        ["inputs read", f"{s.curation.get('read', s.inputs):,}"],
        [
            "duplicates removed (exact, near)",
            f"{s.curation.get('exact_duplicates', 0):,}, {s.curation.get('near_duplicates', 0):,}",
        ],
        ["inputs with PII masked before the teacher", f"{s.pii_masked:,}"],
        ["inputs labelled", f"{s.inputs:,}"],
        ["kept as training targets", f"{s.labelled:,}"],
        *[[f"dropped: {REASONS.get(reason, reason)}", f"{n:,}"] for reason, n in s.rejected.items()],
        ["teacher gave nothing (after retries)", f"{s.failed:,}"],
        ["not sent (cap reached)", f"{s.pending:,}"],
        [
            "requests sent / from cache / resumed / re-sent in doubt",
            f"{s.sent:,} / {s.cached:,} / {s.resumed:,} / {s.in_doubt_resent:,}",
        ],
        ["teacher spend", f"{usd(s.usd)} for {s.tokens:,} tokens in {s.calls:,} calls"],
        ["labelling wall time", f"{s.wall_s:,.0f} s"],
    ]
    if s.gold_agreement is not None:
        rows.append(["teacher labels agreeing with the inputs' gold", _ci(s.gold_agreement)])
    return Table(["labelling", "value"], rows)


def chart(sides: list[SideBySide], metric: str) -> bytes | None:
    """Quality (95% CI) and median latency of every model side by side."""
    if not sides:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(9.0, 3.2), dpi=110)
    names = [s.name for s in sides]
    values = [s.quality.value for s in sides]
    errors = [[s.quality.value - s.quality.ci_low for s in sides], [s.quality.ci_high - s.quality.value for s in sides]]
    left.bar(names, values, yerr=errors, capsize=3, color="#4c72b0")
    left.set_ylabel(f"{metric} (95% CI)")
    left.set_ylim(0, 1.05)
    right.bar(names, [s.latency_p50_ms for s in sides], color="#dd8452")
    right.set_ylabel("median latency (ms)")
    for axis in (left, right):
        axis.tick_params(axis="x", labelrotation=20)
        axis.grid(axis="y", alpha=0.3)
    return png_bytes(fig)


def write_distill_report(run_dir: Path, result: DistillResult) -> tuple[Path, Path]:
    """``report.md`` and ``report.html`` (and ``distill.png``) in the run directory."""
    png = chart(result.candidates, result.metric)
    if png is not None:
        atomic_write_bytes(run_dir / CHART, png)
    context = {
        "result": result,
        "headline": headline(result),
        "sides": _sides(result),
        "ratios": _ratios(result),
        "labelling": _labelling(result),
        "chart": png,
        "chart_file": CHART if png is not None else None,
    }
    return write_report(run_dir, render_page("distill.md.j2", **context), render_page("distill.html", **context))


def log_distillation(project: Project, result: DistillResult) -> str:
    """An MLflow run with the teacher, the labelling figures, every ratio and the report."""
    mlflow = _mlflow()
    with start_run(project, f"distill-{result.name}", tags={"tunewise.stage": "distill"}) as run:
        mlflow.log_params(
            {
                "teacher": result.teacher,
                "dataset_hash": result.dataset_hash,
                "adapter_dir": str(result.adapter_dir),
                "labelled": result.labels.labelled,
                "inputs": result.labels.inputs,
            }
        )
        metrics = {"teacher_usd": result.labels.usd, "teacher_tokens": float(result.labels.tokens)}
        for side in result.candidates:
            metrics[metric_key(f"{side.name}.{result.metric}")] = side.quality.value
            metrics[metric_key(f"{side.name}.latency_p50_ms")] = side.latency_p50_ms
        for name in ("latency_p50_ratio", "latency_p95_ratio", "prompt_tokens_ratio", "cost_ratio"):
            value = getattr(result, name)
            if value is not None:
                metrics[name] = value
        if result.quality_ratio is not None:
            metrics.update(
                quality_ratio=result.quality_ratio.value,
                quality_ratio_ci_low=result.quality_ratio.ci_low,
                quality_ratio_ci_high=result.quality_ratio.ci_high,
            )
        mlflow.log_metrics(metrics)
        for name in ("report.md", "report.html", CHART):
            if (result.run_dir / name).is_file():
                mlflow.log_artifact(str(result.run_dir / name))
        return run.info.run_id
