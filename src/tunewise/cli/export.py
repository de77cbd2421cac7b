"""``tunewise export ADAPTER_DIR``: merged safetensors + GGUF files, re-evaluated against the adapter."""

from __future__ import annotations

from pathlib import Path

import typer

from tunewise.cli.common import console, err_console, handle_errors
from tunewise.config import load_project
from tunewise.export import export_adapter
from tunewise.export.parity import ParityReport


def export_command(
    adapter_dir: Path = typer.Argument(..., help="A PEFT adapter directory written by `tunewise train`."),
    out: Path | None = typer.Option(None, "--out", help="Export directory (default <ADAPTER_DIR>-export)."),
    gguf: str = typer.Option("f16,q8_0", "--gguf", help="GGUF types, comma-separated (f16, q8_0, bf16, f32)."),
    no_gguf: bool = typer.Option(False, "--no-gguf", help="Only the merged safetensors model."),
    eval_n: int = typer.Option(
        0, "--eval", min=0, help="Dev examples to generate and score for task parity (needs the spec)."
    ),
    config: Path = typer.Option(
        Path("tunewise.yaml"), "--config", "-c", help="The project spec (for --eval and parity prompts)."
    ),
    base: str | None = typer.Option(None, "--base", help="Base model, if not the one recorded with the adapter."),
    max_metric_drop: float | None = typer.Option(
        None, "--max-metric-drop", min=0, help="Tolerated task-metric drop for every artifact."
    ),
    force: bool = typer.Option(False, "--force", help="Replace an existing export directory."),
) -> None:
    """Merge the adapter into its base, export GGUF, and fail (exit 1) if any artifact drifts from the adapter."""

    with handle_errors():
        project = load_project(config) if config.exists() or eval_n > 0 else None
        result = export_adapter(
            adapter_dir,
            out_dir=out,
            gguf=[] if no_gguf else [t.strip() for t in gguf.split(",")],
            eval_examples=eval_n,
            project=project,
            base_model=base,
            max_metric_drop=max_metric_drop,
            replace=force,
        )
    print_parity(result.parity)
    console.print(f"wrote {result.out_dir} ({result.out_dir / 'parity.md'})")
    if not result.passed:
        for artifact in result.parity.artifacts:
            for failure in artifact.failures:
                err_console.print(f"[bold red]parity failure:[/bold red] {artifact.name}: {failure}", highlight=False)
        raise typer.Exit(1)


def print_parity(report: ParityReport) -> None:
    """The parity report as a Rich table on stdout."""
    from rich.table import Table

    table = Table(title="parity with base + adapter")
    for column in ("artifact", "max |Δlogit|", "top-1 agree", "task metric", "identical", "verdict"):
        table.add_column(column)
    for a in report.artifacts:
        logits = (f"{a.logits.max_abs_diff:.3g}", f"{a.logits.top1_agreement:.3f}") if a.logits else ("", "")
        task = ("", "")
        if a.task is not None:
            task = (
                f"{a.task.reference:.3f} → {a.task.value:.3f} ({a.task.delta:+.3f})",
                f"{a.task.identical_outputs}/{a.task.n}",
            )
        table.add_row(a.name, *logits, *task, "pass" if a.passed else "[red]FAIL[/red]")
    console.print(table)
