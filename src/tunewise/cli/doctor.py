"""``tunewise doctor``: what the project needs, checked before any minutes are spent on it."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from tunewise.cli.common import console, handle_errors
from tunewise.doctor import DoctorReport, doctor


def doctor_command(
    config: Path = typer.Option(Path("tunewise.yaml"), "--config", "-c", help="The project spec (or its directory)."),
) -> None:
    """Check the packages, data files and MLflow store the project needs; exit 1 when a required one is missing."""
    with handle_errors():
        report = doctor(config)
    print_report(report)
    if not report.ok:
        raise typer.Exit(1)


def print_report(report: DoctorReport) -> None:
    table = Table(title=f"doctor: {report.spec_file}")
    for column in ("check", "status", "detail", "fix"):
        table.add_column(column, overflow="fold")
    for check in report.checks:
        if check.ok:
            status = "[green]ok[/green]"
        else:
            status = "[red]missing[/red]" if check.required else "[yellow]missing (optional)[/yellow]"
        table.add_row(check.name, status, check.detail, check.fix or "")
    console.print(table)
    for check in report.missing:
        console.print(f"[bold red]missing:[/bold red] {check.name}: {check.fix}", highlight=False, soft_wrap=True)
