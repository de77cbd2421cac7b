"""``tunewise distill``: a teacher labels inputs, a small student learns them, the two are compared (thin over
:func:`tunewise.distill.distill`)."""

from __future__ import annotations

from pathlib import Path

import typer
from pydantic import ValidationError

from tunewise.cli.common import console, handle_errors
from tunewise.config import ProjectSpec, load_project, load_train_spec
from tunewise.distill import distill
from tunewise.distill.report import headline
from tunewise.errors import InputError

CAPPED_EXIT = 4
"""Exit status when a spend cap stopped labelling: nothing is lost; raise the cap and run the same command again."""


def distill_command(
    config: Path = typer.Option(Path("tunewise.yaml"), "--config", "-c", help="The project spec (or its directory)."),
    teacher: str | None = typer.Option(None, "--teacher", help="The teaching candidate (default: distill.teacher)."),
    inputs: Path | None = typer.Option(
        None, "--inputs", help="Unlabelled inputs (JSONL; e.g. `tunewise logs export`); default: data.train's inputs."
    ),
    dataset: str | None = typer.Option(
        None, "--dataset", help="Label the train inputs of this dataset version (hash, prefix or latest)."
    ),
    max_inputs: int | None = typer.Option(None, "--max-inputs", min=1, help="Label at most N inputs."),
    max_usd: float | None = typer.Option(None, "--max-usd", min=0, help="Spend cap for a priced teacher (US $)."),
    max_tokens: int | None = typer.Option(None, "--max-tokens", min=1, help="Cap on the teacher's tokens."),
    name: str | None = typer.Option(None, "--name", help="The run's name: the same name resumes it."),
    label_only: bool = typer.Option(False, "--label-only", help="Stop once the labelled dataset version is written."),
    ceiling: bool = typer.Option(False, "--ceiling", help="Also train the student on the inputs' gold targets."),
    train_config: Path | None = typer.Option(None, "--train-config", help="The student's training settings (YAML)."),
    max_steps: int | None = typer.Option(None, "--max-steps", min=1, help="Override train.max_steps."),
    dev_examples: int | None = typer.Option(None, "--dev-examples", min=1, help="Gold dev examples compared."),
    no_track: bool = typer.Option(False, "--no-track", help="Do not log to MLflow."),
) -> None:
    """Label inputs with a teacher, train a small student on the labels, and measure what survives."""
    with handle_errors():
        project = load_project(config)
        overrides = {
            "teacher": teacher,
            "inputs": str(inputs.resolve()) if inputs is not None else None,
            "dataset": dataset,
            "max_inputs": max_inputs,
            "max_usd": max_usd,
            "max_tokens": max_tokens,
            "dev_examples": dev_examples,
        }
        given = {k: v for k, v in overrides.items() if v is not None}
        try:
            distill_spec = {**project.spec.distill.model_dump(), **given}
            project.spec = ProjectSpec.model_validate({**project.spec.model_dump(), "distill": distill_spec})
        except ValidationError as error:
            first = error.errors()[0]
            flag = "--" + str(first["loc"][-1]).replace("_", "-") if first["loc"] else "--teacher"
            raise InputError(first["msg"].removeprefix("Value error, "), field=flag) from None
        spec = load_train_spec(train_config) if train_config is not None else project.spec.train
        if max_steps is not None:
            spec = spec.model_copy(update={"max_steps": max_steps})
        result = distill(
            project, name=name, label_only=label_only, ceiling=ceiling, train_spec=spec, track=not no_track
        )
    labels = result.labels
    console.print(
        f"labelled {labels.inputs:,} inputs: {labels.labelled:,} kept, {sum(labels.rejected.values()):,} dropped, "
        f"{labels.failed:,} failed, {labels.pending:,} not sent; {labels.sent:,} requests sent, {labels.cached:,} "
        f"from cache; teacher spend ${labels.usd:.4f} ({labels.tokens:,} tokens)",
        highlight=False,
    )
    if result.status == "capped":
        console.print(
            f"stopped at the cap: {labels.pending:,} inputs not labelled. Raise --max-usd / --max-tokens and run the "
            f"same command (--name {result.name}) to continue; nothing labelled is sent again.",
            highlight=False,
        )
        raise typer.Exit(CAPPED_EXIT)
    if result.status == "labelled":
        console.print(f"dataset version: [bold]{result.dataset_hash}[/bold]")
        return
    console.print(headline(result), highlight=False)
    console.print(f"report: [bold]{result.run_dir / 'report.html'}[/bold]")
