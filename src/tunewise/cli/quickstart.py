"""``tunewise quickstart``: the main job on the embedded default, end to end on the receipts example."""

from __future__ import annotations

from pathlib import Path

import typer

from tunewise.cli.common import console, handle_errors


def quickstart_command(
    project_dir: Path | None = typer.Option(None, "--project", help="Project directory (default: examples/receipts)."),
    limit: int | None = typer.Option(None, "--limit", min=1, help="Only the first N dev examples."),
) -> None:
    """Evaluate the embedded model zero-shot and 3-shot on the receipts dev split and write the report."""
    from tunewise.pipeline import run_quickstart

    with handle_errors():
        result = run_quickstart(project_dir, limit=limit)
        console.print(f"\n[bold green]done[/bold green] — report: [bold]{result.report_html}[/bold]")
