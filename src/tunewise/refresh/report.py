"""The refresh report: ``decision.json``, Markdown and self-contained HTML, and the decision's MLflow run."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from tunewise.config import Project
from tunewise.io.outputs import atomic_run_dir
from tunewise.refresh.gate import GateTest
from tunewise.refresh.record import DECISION_FILE, RefreshDecision
from tunewise.report.page import Table, render_page, write_report
from tunewise.tracking import _mlflow, start_run


def headline(d: RefreshDecision) -> str:
    """The outcome in one sentence."""
    if d.promoted:
        return f"Promoted version {d.challenger_version} to {d.registered_model}@{d.alias}. {_why(d.reason)}"
    return f"{d.registered_model}@{d.alias} stays on version {d.champion_version}. {_why(d.reason)}"


def _why(reason: str) -> str:
    return reason[:1].upper() + reason[1:] + ("" if reason.endswith(".") else ".")


def write_decision(
    project: Project, decision: RefreshDecision, directory: Path, *, track: bool = True
) -> RefreshDecision:
    """Write ``decision.json``, ``report.md`` and ``report.html`` atomically; log them to MLflow when ``track``."""
    decision = dataclasses.replace(decision, run_dir=directory)
    if track:
        decision = dataclasses.replace(decision, mlflow_run_id=_log_mlflow(project, decision))
    with atomic_run_dir(directory, "refresh") as tmp:
        text = json.dumps(decision.to_dict(), indent=2, ensure_ascii=False) + "\n"
        (tmp / DECISION_FILE).write_text(text, encoding="utf-8")
        write_report(tmp, to_markdown(decision), to_html(decision))
    return decision


def _context(d: RefreshDecision) -> dict[str, object]:
    return {"d": d, "headline": headline(d), "tests": _tests(d), "sizes": _sizes(d), "timings": _timings(d)}


def to_markdown(d: RefreshDecision) -> str:
    return render_page("refresh.md.j2", **_context(d))


def to_html(d: RefreshDecision) -> str:
    return render_page("refresh.html", **_context(d))


def _tests(d: RefreshDecision) -> Table:
    def row(name: str, t: GateTest) -> list[str]:
        return [
            name,
            t.kind.replace("_", "-"),
            str(t.n),
            f"{t.champion:.3f}",
            f"{t.challenger:.3f}",
            f"{t.diff:+.3f} [{t.ci_low:+.3f}, {t.ci_high:+.3f}]",
            f"{t.p_value:.3g} ({t.test})",
            "pass" if t.passed else "fail",
        ]

    header = ["examples", "test", "n", "champion", "challenger", "diff [95% CI]", "p", "result"]
    return Table(header, [row("golden set", d.golden), row("new slice", d.new_slice)])


def _sizes(d: RefreshDecision) -> Table:
    s = d.sizes
    rows = [
        ["new labelled rows", f"{s.new_rows:,}"],
        ["  trained on", f"{s.new_train:,}"],
        ["  held out (superiority test)", f"{s.new_eval:,}"],
        ["replayed from the champion's data", f"{s.replay:,} of {s.old_train:,} ({s.replay_share:.0%} of training)"],
        ["golden set", f"{s.golden:,}"],
    ]
    return Table(["", "rows"], rows)


def _timings(d: RefreshDecision) -> Table:
    return Table(["step", "seconds"], [[step, f"{seconds:,.1f}"] for step, seconds in d.timings.items()])


def _log_mlflow(project: Project, d: RefreshDecision) -> str | None:
    """Log the decision as an MLflow run tagged ``tunewise.stage=refresh``."""
    mlflow = _mlflow()
    with start_run(project, f"refresh-{d.decision_id}", tags={"tunewise.stage": "refresh"}) as run:
        mlflow.log_params(
            {
                "champion_version": d.champion_version,
                "challenger_version": d.challenger_version,
                "challenger_dataset": d.challenger_dataset,
                "new_dataset": d.new_dataset,
                "metric": d.metric,
                "margin": d.golden.margin,
                "alpha": d.new_slice.alpha,
            }
        )
        mlflow.set_tags({"promoted": str(d.promoted).lower(), "refresh.reason": d.reason[:5000]})
        metrics: dict[str, float] = {f"seconds.{k}": v for k, v in d.timings.items()}
        for name, test in (("golden", d.golden), ("new", d.new_slice)):
            metrics.update(
                {
                    f"{name}.diff": test.diff,
                    f"{name}.ci_low": test.ci_low,
                    f"{name}.ci_high": test.ci_high,
                    f"{name}.p_value": test.p_value,
                    f"{name}.champion": test.champion,
                    f"{name}.challenger": test.challenger,
                    f"{name}.passed": float(test.passed),
                }
            )
        mlflow.log_metrics(metrics)
        mlflow.log_dict(d.to_dict(), DECISION_FILE)
        mlflow.log_text(to_markdown(d), "report.md")
        return str(run.info.run_id)
