"""``tunewise quickstart``: the main job on the embedded default, end to end on the receipts example."""

from __future__ import annotations

from pathlib import Path

import typer

from tunewise.cli.common import console, handle_errors
from tunewise.pipeline import run_quickstart


def quickstart_command(
    project_dir: Path | None = typer.Option(None, "--project", help="Project directory (default: examples/receipts)."),
    full: bool = typer.Option(
        False, "--full", help="The README's headline run: the spec's train: section, every dev example (~1 hour)."
    ),
    limit: int | None = typer.Option(None, "--limit", min=1, help="Evaluate on the first N dev examples only."),
    train_steps: int | None = typer.Option(
        None, "--train-steps", min=1, help="Cap the fine-tune at N optimizer steps."
    ),
    sufficiency: bool = typer.Option(False, "--sufficiency", help="Also run decide's data-sufficiency probe (slow)."),
    serve: bool = typer.Option(True, "--serve/--no-serve", help="End by serving the model and querying it."),
) -> None:
    """Evaluate → decide → curate → train → evaluate again → serve and query → monitor → report, on the embedded
    model. By default at the spec's quickstart: budget (~20 minutes for the receipts on 2 CPU cores)."""

    with handle_errors():
        result = run_quickstart(
            project_dir, full=full, limit=limit, train_steps=train_steps, sufficiency=sufficiency, serve=serve
        )
        console.print(f"\n[bold green]done[/bold green] — report: [bold]{result.report_html}[/bold]")
