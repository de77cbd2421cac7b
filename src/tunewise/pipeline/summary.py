"""The main job's report: the answer in one sentence, the table behind it, then every stage linked."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from tunewise.config import Project
from tunewise.decide import ACTIONS
from tunewise.io.atomic import atomic_write_text
from tunewise.io.outputs import mark_run_dir
from tunewise.pipeline.eta import TIMINGS_FILE
from tunewise.pipeline.record import PipelineResult
from tunewise.records import EvalSummary
from tunewise.report.page import render_page, write_report


def answer_sentence(result: PipelineResult) -> str:
    """Does fine-tuning pay off here? One sentence, with the number that says so and the budget it was measured at."""
    comparison, budget = result.comparison, result.budget
    if comparison is None:
        action = ACTIONS[result.decision.recommendation].title
        return f"Not fine-tuned: the decision is {action.lower()!r} — {result.decision.summary}"
    c = comparison.comparison
    if c is None or comparison.best_baseline is None:
        return f"Fine-tuned, with no prompt to compare against: {comparison.describe()}."
    summary, metric = comparison.summary, comparison.summary.primary_metric
    tuned = summary.candidate(comparison.finetuned).metrics[metric].value
    best = summary.candidate(comparison.best_baseline).metrics[metric].value
    verdict = "Fine-tuning pays off" if comparison.beat_baseline else "Fine-tuning does not (yet) pay off"
    sentence = (
        f"{verdict} on {result.project}: the LoRA fine-tune reaches {metric} {tuned:.3f} against {best:.3f} for the "
        f"best prompt ({comparison.best_baseline}), {c.diff:+.3f} with a paired 95% CI of [{c.ci_low:+.3f}, "
        f"{c.ci_high:+.3f}] (p={c.p_value:.2g}, n={c.n})"
    )
    if budget is not None:
        sentence += f" — with {budget.describe()}"
        if budget.full_budget:
            sentence += f"; the full budget (tunewise quickstart --full) measured {budget.full_budget}"
    return sentence + "."


def candidate_rows(summary: EvalSummary | None) -> list[dict[str, Any]]:
    """Every candidate of the final comparison: the primary metric with its CI, schema validity when measured."""
    if summary is None:
        return []
    metric = summary.primary_metric
    rows = []
    for candidate in sorted(summary.candidates, key=lambda c: -c.metrics[metric].value):
        value = candidate.metrics[metric]
        valid = candidate.metrics.get("schema_valid_rate")
        rows.append(
            {
                "name": candidate.name,
                "metric": metric,
                "value": value.value,
                "ci_low": value.ci_low,
                "ci_high": value.ci_high,
                "schema_valid": None if valid is None else valid.value,
            }
        )
    return rows


def stage_rows(project: Project, result: PipelineResult) -> list[tuple[str, str, str]]:
    """(stage, outcome, report path) for every stage that ran."""
    root = project.state_dir
    metric = result.baseline.primary_metric
    best = max(result.baseline.candidates, key=lambda c: c.metrics[metric].value)
    rows = [
        (
            "evaluate",
            f"best baseline {best.name}: {metric} {best.metrics[metric].value:.3f} "
            f"[{best.metrics[metric].ci_low:.3f}, {best.metrics[metric].ci_high:.3f}] "
            f"on {result.baseline.n_examples} dev examples",
            str(root / "runs" / result.baseline.run_id / "report.html"),
        )
    ]
    if result.decision is not None:
        rows.append(
            (
                "decide",
                f"{result.decision.recommendation}: {result.decision.summary}",
                str(root / "decisions" / result.decision.decision_id / "report.html"),
            )
        )
    if result.dataset is not None:
        counts = result.dataset.card().counts.to_dict()
        rows.append(("curate", f"version {result.dataset.hash[:16]} {counts}", str(result.dataset.path / "card.md")))
    if result.training is not None:
        t = result.training
        rows.append(
            (
                "train",
                f"adapter {t.adapter_dir.name}: best dev-subset {t.metric_name} {t.best_metric} at step {t.best_step}, "
                f"{t.train_tokens} tokens at {t.tokens_per_s:.0f} tok/s",
                str(t.adapter_dir),
            )
        )
    if result.comparison is not None:
        rows.append(
            ("evaluate again", result.comparison.describe(), str(result.training.run_dir / "eval-dev" / "report.html"))
        )
    if result.served is not None:
        rows.append(("serve", result.served.describe(), str(result.served.log_path or "")))
    if result.monitored is not None:
        m = result.monitored
        outcome = f"{m.verdict}: {m.n_window} requests of {m.model} against {m.n_reference} reference inputs"
        if m.verdict == "too_few":
            outcome += f" (a verdict needs monitor.min_examples = {project.spec.monitor.min_examples})"
        rows.append(("monitor", outcome, str(m.run_dir / "report.html")))
    return rows


def write_pipeline_report(project: Project, result: PipelineResult) -> tuple[Path, Path]:
    """A one-page summary of the run, and its stage times (``timings.json``: the next run's time estimates)."""
    directory = project.state_dir / "pipeline" / f"{dt.datetime.now(dt.UTC):%Y%m%d-%H%M%S}"
    rows = [
        {
            "stage": stage,
            "seconds": result.timings_s.get(stage, 0),
            "outcome": outcome,
            "report": report,
            "report_name": Path(report).name,
        }
        for stage, outcome, report in stage_rows(project, result)
    ]
    context = {
        "project": result.project,
        "answer": answer_sentence(result),
        "candidates": candidate_rows(result.comparison.summary if result.comparison else result.baseline),
        "rows": rows,
    }
    mark_run_dir(directory, "pipeline")
    timings = {"budget": budget_key(result.budget), "timings_s": result.timings_s}
    atomic_write_text(directory / TIMINGS_FILE, json.dumps(timings, indent=2))
    return write_report(directory, render_page("pipeline.md.j2", **context), render_page("pipeline.html", **context))


def budget_key(budget: Any) -> str:
    return "full" if budget is None else json.dumps(budget.to_dict(), sort_keys=True)
