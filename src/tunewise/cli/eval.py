"""``tunewise eval`` and ``tunewise report``."""

from __future__ import annotations

from pathlib import Path

import typer

from tunewise.cli.common import console, handle_errors
from tunewise.config import load_project
from tunewise.eval import evaluate
from tunewise.report import render_report
from tunewise.report.console import print_summary


def eval_command(
    config: Path = typer.Option(Path("tunewise.yaml"), "--config", "-c", help="The project spec (or its directory)."),
    split: str = typer.Option("dev", help="Which data split of the spec to evaluate."),
    data: Path | None = typer.Option(None, "--data", help="Any data file of the same shape, instead of the split."),
    limit: int | None = typer.Option(None, "--limit", min=1, help="Only the first N examples."),
    out: Path | None = typer.Option(None, "--out", help="Run directory (default .tunewise/runs/<run-id>)."),
    candidate: list[str] = typer.Option([], "--candidate", help="Only these candidates (repeatable)."),
    no_track: bool = typer.Option(False, "--no-track", help="Do not log to MLflow."),
) -> None:
    """Run every candidate on a split: predictions, metrics with CIs, paired tests, report."""
    with handle_errors():
        project = load_project(config)
        summary = evaluate(
            project, split=split, data_path=data, limit=limit, out=out, candidates=candidate or None, track=not no_track
        )
        print_summary(summary, console)
        run_dir = out or project.state_dir / "runs" / summary.run_id
        console.print(f"report: [bold]{run_dir / 'report.html'}[/bold]")


def report_command(run_dir: Path = typer.Argument(..., help="A run directory written by `tunewise eval`.")) -> None:
    """Render (again) the Markdown and HTML report of a run directory."""
    with handle_errors():
        md, html = render_report(run_dir)
        console.print(f"wrote {md}\nwrote {html}")
