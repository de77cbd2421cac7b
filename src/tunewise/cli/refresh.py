"""``tunewise refresh``: train a challenger on new labels, gate it, promote it by alias; ``rollback``, ``promote`` and
``--check`` for cron/CI (thin over :mod:`tunewise.refresh`)."""

from __future__ import annotations

from pathlib import Path

import typer

from tunewise.cli.common import console, handle_errors
from tunewise.config import load_project, load_train_spec
from tunewise.refresh import check_due, promote, refresh, rollback
from tunewise.refresh.promote import AliasMove
from tunewise.refresh.report import headline

DUE_EXIT = 3
"""Exit status of ``--check`` when a refresh is due (as ``tunewise monitor``: 3 = action needed)."""

CONFIG = typer.Option(Path("tunewise.yaml"), "--config", "-c", help="The project spec (or its directory).")
WAIT = typer.Option(False, "--wait", help="Wait for a refresh already running instead of refusing.")

app = typer.Typer(help="Retrain on new labels, gate the challenger against the champion, move the champion alias.")


@app.callback(invoke_without_command=True)
def refresh_command(
    ctx: typer.Context,
    config: Path = CONFIG,
    dataset: str | None = typer.Option(
        None, "--dataset", help="The dataset version of the new labelled rows (default: the latest labelled one)."
    ),
    check: bool = typer.Option(
        False, "--check", help="Only say whether a refresh is due (by time or drift): exit 0 not due, 3 due."
    ),
    no_promote: bool = typer.Option(False, "--no-promote", help="Decide and record, but do not move the alias."),
    train_config: Path | None = typer.Option(None, "--train-config", help="The challenger's training settings."),
    max_steps: int | None = typer.Option(None, "--max-steps", min=1, help="Override train.max_steps."),
    wait: bool = WAIT,
) -> None:
    """Train a challenger on the new labels and promote it only if it passes both paired tests."""
    if ctx.invoked_subcommand is not None:
        return
    with handle_errors():
        project = load_project(config)
        if check:
            due = check_due(project)
            console.print(due.describe(), highlight=False)
            raise typer.Exit(DUE_EXIT if due.due else 0)
        spec = load_train_spec(train_config) if train_config is not None else project.spec.train
        if max_steps is not None:
            spec = spec.model_copy(update={"max_steps": max_steps})
        decision = refresh(project, dataset=dataset, promote=not no_promote, wait=wait, train_spec=spec)
    console.print(headline(decision), highlight=False)
    console.print(f"report: [bold]{decision.run_dir}/report.html[/bold]")


@app.command("rollback")
def rollback_command(
    config: Path = CONFIG,
    reason: str = typer.Option("rolled back by hand", "--reason", help="Why, for the history."),
    wait: bool = WAIT,
) -> None:
    """Move the champion alias back to the version its last promotion replaced."""
    with handle_errors():
        move = rollback(load_project(config), reason=reason, wait=wait)
    _print(move)


@app.command("promote")
def promote_command(
    config: Path = CONFIG,
    version: int | None = typer.Option(None, "--version", min=1, help="The registered version to make champion."),
    adapter: str | None = typer.Option(None, "--adapter", help="Or the adapter (.tunewise/adapters/NAME)."),
    reason: str = typer.Option("promoted by hand", "--reason", help="Why, for the history."),
    wait: bool = WAIT,
) -> None:
    """Set the champion alias explicitly: the first champion, or any registered version."""
    with handle_errors():
        move = promote(load_project(config), version=version, adapter=adapter, reason=reason, wait=wait)
    _print(move)


def _print(move: AliasMove) -> None:
    was = f" (was version {move.from_version})" if move.from_version else ""
    console.print(f"{move.model}@{move.alias} -> version {move.to_version}{was}", highlight=False)
