"""The consistency report (Markdown + HTML with the drift curves) and its MLflow run."""

from __future__ import annotations

from pathlib import Path

from tunewise.config import Project
from tunewise.io.atomic import atomic_write_bytes
from tunewise.persona.record import CandidateCurves, PersonaResult
from tunewise.records import MetricValue
from tunewise.report.page import Table, render_page, write_report
from tunewise.report.plots import png_bytes
from tunewise.tracking import _mlflow, metric_key, start_run

CHART = "persona_drift.png"
HEADLINE_METRIC = "identifiability"


def describe(candidate: CandidateCurves, margin: float) -> str:
    """One candidate's answer: does identifiability drift, and does it hold its turn-1 level late?"""
    curve = candidate.curve(HEADLINE_METRIC)
    first, last = curve.points[0], curve.points[-1]
    trend = f"{first.value.value:.2f} at turn {first.turn} → {last.value.value:.2f} at turn {last.turn}"
    drift = (
        f"falls significantly below turn {first.turn} from turn {curve.drift_turn}"
        if curve.drift_turn is not None
        else f"never falls significantly below turn {first.turn}"
    )
    late = [t for t in (20, 30) if str(t) in curve.holds]
    held = [t for t in late if curve.holds[str(t)]]
    holds = ""
    if late:
        if held == late:
            holds = f"; holds its turn-{first.turn} level (within {margin:.2f}) at turn {' and '.join(map(str, late))}"
        else:
            lost = [t for t in late if t not in held]
            holds = f"; not shown to hold within {margin:.2f} at turn {' and '.join(map(str, lost))}"
    return f"`{candidate.candidate}`: persona identifiability {trend}, {drift}{holds}."


def headline(result: PersonaResult) -> str:
    return " ".join(describe(c, result.margin) for c in result.candidates)


def _ci(value: MetricValue) -> str:
    return f"{value.value:.2f} [{value.ci_low:.2f}, {value.ci_high:.2f}]"


def curve_table(result: PersonaResult, metric: str) -> Table | None:
    rows = []
    for candidate in result.candidates:
        if not any(c.metric == metric for c in candidate.curves):
            continue
        curve = candidate.curve(metric)
        drift = str(curve.drift_turn) if curve.drift_turn is not None else "none"
        rows.append([candidate.candidate, *[_ci(p.value) for p in curve.points], drift])
    if not rows:
        return None
    return Table(["candidate", *[f"turn {t}" for t in result.probe_turns], "drift from turn"], rows)


def _comparisons(result: PersonaResult) -> Table:
    rows = [
        [
            f"{c.b} − {c.a}",
            c.metric.partition("@")[2],
            f"{c.diff:+.3f}",
            f"[{c.ci_low:+.3f}, {c.ci_high:+.3f}]",
            f"{c.p_value:.3g}",
        ]
        for c in result.comparisons
    ]
    return Table(["candidates", "turn", "identifiability rank diff", "95% CI", "p"], rows)


def _costs(result: PersonaResult) -> Table:
    rows = [
        [
            c.candidate,
            f"{c.seconds_per_conversation:.1f}",
            f"{c.completion_tokens_per_conversation:,.0f}",
            f"{c.truncated} (up to {c.dropped_exchanges_max} exchanges)",
            f"{c.cut_by_length}",
        ]
        for c in result.candidates
    ]
    return Table(
        [
            "candidate",
            "s / conversation",
            "tokens generated / conversation",
            "truncated conversations",
            "answers cut by max_new_tokens",
        ],
        rows,
    )


def chart(result: PersonaResult) -> bytes | None:
    """One panel per metric: each candidate's mean by turn with its 95% CI band, chance and reference lines."""
    if not result.candidates:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = [c.metric for c in result.candidates[0].curves]
    cols = 3
    rows = (len(metrics) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4.0 * cols, 3.0 * rows), dpi=100, squeeze=False)
    guides = {
        "identifiability": 1 / (result.distractors + 1),
        "identifiability_rank": 0.5,
        "words": result.reference_words,
        "uppercase": result.reference_uppercase,
    }
    for axis, metric in zip(axes.flat, metrics, strict=False):
        for candidate in result.candidates:
            curve = candidate.curve(metric)
            turns = [p.turn for p in curve.points]
            axis.plot(turns, [p.value.value for p in curve.points], marker="o", label=candidate.candidate)
            axis.fill_between(
                turns, [p.value.ci_low for p in curve.points], [p.value.ci_high for p in curve.points], alpha=0.2
            )
        if metric in guides:
            axis.axhline(guides[metric], color="grey", linestyle="--", linewidth=1)
        axis.set_title(metric)
        axis.set_xlabel("turn")
        axis.grid(alpha=0.3)
    for axis in list(axes.flat)[len(metrics) :]:
        axis.axis("off")
    axes.flat[0].legend(fontsize=8)
    fig.tight_layout()
    return png_bytes(fig)


def write_persona_report(run_dir: Path, result: PersonaResult) -> tuple[Path, Path]:
    png = chart(result)
    if png is not None:
        atomic_write_bytes(run_dir / CHART, png)
    metrics = [c.metric for c in result.candidates[0].curves] if result.candidates else []
    tables = [(m, t) for m in metrics if (t := curve_table(result, m)) is not None]
    context = {
        "result": result,
        "headline": headline(result),
        "tables": tables,
        "comparisons": _comparisons(result) if result.comparisons else None,
        "costs": _costs(result),
        "chart": png,
        "chart_file": CHART if png is not None else None,
    }
    return write_report(run_dir, render_page("persona.md.j2", **context), render_page("persona.html", **context))


def log_persona(project: Project, result: PersonaResult) -> str:
    """An MLflow run with every candidate's curve point by point and the report."""
    mlflow = _mlflow()
    with start_run(project, f"persona-{result.run_dir.name}", tags={"tunewise.stage": "persona"}) as run:
        mlflow.log_params(
            {
                "conversations": result.conversations,
                "turns": result.turns,
                "probe_turns": ",".join(map(str, result.probe_turns)),
                "distractors": result.distractors,
                "judge": result.judge.judge if result.judge else "none",
            }
        )
        for candidate in result.candidates:
            for curve in candidate.curves:
                for point in curve.points:
                    mlflow.log_metric(
                        metric_key(f"{candidate.candidate}.{curve.metric}"), point.value.value, step=point.turn
                    )
            mlflow.log_metric(
                metric_key(f"{candidate.candidate}.seconds_per_conversation"), candidate.seconds_per_conversation
            )
        for name in ("report.md", "report.html", CHART):
            if (result.run_dir / name).is_file():
                mlflow.log_artifact(str(result.run_dir / name))
        return run.info.run_id
