"""``tunewise train --sweep sweep.yaml``: the train command hands over to :func:`sweep_command`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from tunewise.config import Project, TrainSpec
from tunewise.train import sweep


def sweep_command(
    project: Project,
    sweep_file: str | Path,
    *,
    base_spec: TrainSpec | None = None,
    dataset: Any = None,
    out_dir: str | Path | None = None,
    track: bool = True,
    console: Console | None = None,
) -> None:
    """Run the sweep and print the best parameters and the trial table.

    Args:
        project: the loaded project.
        sweep_file: the sweep YAML.
        base_spec: the resolved training settings the sweep starts from (the train command's config).
        dataset: forwarded to every trial's ``train()``.
        out_dir: the sweep directory (default under ``.tunewise/runs``).
        track: log to MLflow.
        console: where to print (default stdout).

    Raises:
        InputError: an invalid sweep file (the CLI root prints it and exits non-zero).
    """
    console = console or Console()
    result = sweep(project, sweep_file, dataset=dataset, base_spec=base_spec, out_dir=out_dir, track=track)
    table = Table(title=f"sweep: {result.metric_name} ({result.direction})")
    names = sorted({name for trial in result.trials for name in trial.params})
    for column in ("trial", "state", result.metric_name, *names):
        table.add_column(column)
    for trial in result.trials:
        value = "" if trial.value is None else f"{trial.value:.4f}"
        table.add_row(str(trial.number), trial.state, value, *[_fmt(trial.params.get(n)) for n in names])
    console.print(table)
    if result.best_trial is None:
        console.print("[yellow]no trial completed[/yellow]")
    else:
        best = ", ".join(f"{k}={_fmt(v)}" for k, v in result.best_params.items())
        console.print(f"best: trial {result.best_trial}, {result.metric_name} = {result.best_value:.4f} ({best})")
    console.print(f"results: {Path(result.sweep_dir) / 'sweep.md'}")


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return "" if value is None else str(value)
