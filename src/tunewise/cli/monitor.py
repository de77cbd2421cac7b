"""``tunewise monitor``: a window of production traffic against the champion's reference data (thin over
:func:`tunewise.monitor.monitor`).

Exit status for a scheduler: 0 when the verdict is ``ok`` or ``watch`` (or ``too_few``: too few requests for a
verdict), :data:`DRIFT_EXIT` when it is ``drift`` (action needed), 1 on an error.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from tunewise.cli.common import console, handle_errors
from tunewise.config import load_project
from tunewise.label import labelled_targets
from tunewise.monitor import monitor
from tunewise.monitor.report import effect_text, headline
from tunewise.serve.logs_export import parse_time

DRIFT_EXIT = 3
"""Exit status when the verdict is ``drift``."""

_STYLE = {"ok": "green", "watch": "yellow", "drift": "bold red", "too_few": "dim", "untested": "dim"}


def monitor_command(
    config: Path = typer.Option(Path("tunewise.yaml"), "--config", "-c", help="The project spec (or its directory)."),
    since: str | None = typer.Option(None, "--since", help="Window start: an ISO date(-time) or a duration ago (7d)."),
    until: str | None = typer.Option(None, "--until", help="Window end: an ISO date(-time) or a duration ago."),
    traffic: Path | None = typer.Option(
        None,
        "--traffic",
        help="A request log (.db) or a JSONL of inputs with timestamps (default: monitor.traffic, "
        "else the project's request log).",
    ),
    model: str | None = typer.Option(None, "--model", help="The served name watched (default: the champion alias)."),
    no_track: bool = typer.Option(False, "--no-track", help="Do not log to MLflow."),
) -> None:
    """Compare production traffic with the champion's reference data: input drift, output drift, quality."""
    with handle_errors():
        project = load_project(config)
        report = monitor(
            project,
            since=parse_time(since, flag="--since") if since is not None else None,
            until=parse_time(until, flag="--until") if until is not None else None,
            source=traffic.resolve() if traffic is not None else None,
            model=model,
            labelled=labelled_targets(project),
            track=not no_track,
        )
    if report.signals:
        table = Table(title=f"{report.n_window} requests against {report.n_reference} reference inputs")
        for column in ("signal", "reference", "window", "effect [95% CI]", "p (Holm)", "status"):
            table.add_column(column)
        for s in report.signals:
            status = f"[{_STYLE[s.status]}]{s.status}[/{_STYLE[s.status]}]"
            adjusted = "-" if s.p_adjusted is None else f"{s.p_adjusted:.3g}"
            ref = "-" if s.reference_value is None else f"{s.reference_value:.3g}"
            win = "-" if s.window_value is None else f"{s.window_value:.3g}"
            table.add_row(s.name, ref, win, effect_text(s), adjusted, status)
        console.print(table)
    skipped = ", ".join(f"{n} {reason}" for reason, n in report.skipped.items())
    if skipped:
        console.print(f"left out: {skipped}", highlight=False)
    console.print(headline(report), highlight=False)
    console.print(f"verdict: [{_STYLE[report.verdict]}]{report.verdict}[/{_STYLE[report.verdict]}]")
    console.print(f"report: [bold]{report.run_dir / 'report.html'}[/bold]")
    if report.verdict == "drift":
        raise typer.Exit(DRIFT_EXIT)
