"""``tunewise train``: LoRA fine-tuning (and, with ``--sweep``, a hyper-parameter search), then the paired eval."""

from __future__ import annotations

from pathlib import Path

import typer

from tunewise.cli.common import console, handle_errors
from tunewise.cli.sweep import sweep_command
from tunewise.config import load_project, load_train_spec
from tunewise.report.console import print_summary
from tunewise.train import compare_with_baselines, train


def train_command(
    config: Path = typer.Option(Path("tunewise.yaml"), "--config", "-c", help="The project spec (or its directory)."),
    train_config: Path | None = typer.Option(
        None, "--train-config", help="A YAML of training settings, instead of the spec's train section."
    ),
    dataset: str | None = typer.Option(None, "--dataset", help="A dataset version (default: the spec's data files)."),
    resume: bool = typer.Option(
        False, "--resume", help="Continue the run named by --name/--out from its latest checkpoint."
    ),
    resume_from: Path | None = typer.Option(
        None, "--resume-from", help="Continue from this run directory or checkpoint."
    ),
    max_steps: int | None = typer.Option(None, "--max-steps", min=1, help="Override train.max_steps."),
    out: Path | None = typer.Option(None, "--out", help="Run directory (default .tunewise/runs/train-<name>)."),
    name: str | None = typer.Option(None, "--name", help="Names the run, the adapter and the MLflow run."),
    compare: bool = typer.Option(
        True, "--compare/--no-compare", help="Evaluate the adapter against the baseline candidates."
    ),
    compare_limit: int | None = typer.Option(
        None, "--compare-limit", min=1, help="Only the first N dev examples in the comparison."
    ),
    no_track: bool = typer.Option(False, "--no-track", help="Do not log to MLflow."),
    sweep: Path | None = typer.Option(
        None, "--sweep", help="A sweep YAML: run an Optuna search instead of one training run."
    ),
) -> None:
    """Train a LoRA adapter, keep the best checkpoint by the task metric, then compare it with the baselines."""
    with handle_errors():
        project = load_project(config)
        spec = load_train_spec(train_config) if train_config is not None else project.spec.train
        if max_steps is not None:
            spec = spec.model_copy(update={"max_steps": max_steps})
        # --- sweep (Optuna): one study instead of one run --------------------------------------------------------
        if sweep is not None:
            sweep_command(
                project, sweep, base_spec=spec, dataset=dataset, out_dir=out, track=not no_track, console=console
            )
            return
        # --- one training run ----------------------------------------------------------------------------------
        result = train(
            project, spec, dataset=dataset, out_dir=out, resume=resume_from or resume, run_name=name, track=not no_track
        )
        if result.encode_report:
            console.print(result.encode_report)
        best = "n/a" if result.best_metric is None else f"{result.best_metric:.3f}"
        console.print(
            f"adapter: [bold]{result.adapter_dir}[/bold]\nsteps {result.final_step} (best {result.best_step}, "
            f"{result.metric_name} {best}{', stopped early' if result.stopped_early else ''}), "
            f"{result.train_tokens} tokens in {result.wall_time_s:.0f} s ({result.tokens_per_s:.0f} tok/s)"
            + (f"\nMLflow run {result.mlflow_run_id}" if result.mlflow_run_id else "")
        )
        if compare and project.spec.candidates:
            outcome = compare_with_baselines(project, result, limit=compare_limit, track=not no_track)
            print_summary(outcome.summary, console)
            console.print(outcome.describe())
            console.print(f"report: [bold]{result.run_dir / 'eval-dev' / 'report.html'}[/bold]")
