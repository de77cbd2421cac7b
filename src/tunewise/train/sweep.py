"""Hyper-parameter sweeps: Optuna TPE over a declared search space, objective = the dev task metric.

A ``sweep.yaml`` names the :class:`~tunewise.config.TrainSpec` fields to search, fixed overrides, the budget
(trials and minutes), the pruner and the seed. Every trial is one ``train()`` call logged as a nested MLflow run
under a parent sweep run; eval-in-the-loop reports the task metric to Optuna so the median pruner can stop bad
trials early. The sweep directory gets ``sweep.json``, ``sweep.md`` and ``sweep.html`` (best parameters, every trial).

The time budget is Optuna's ``timeout``: no trial starts after it has passed, but a running trial is not cut.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tunewise import egress
from tunewise.config import CategoricalParam, FloatParam, IntParam, Project, SweepSpec, TrainSpec, load_sweep
from tunewise.errors import InputError
from tunewise.io.atomic import atomic_write_text
from tunewise.io.outputs import check_output_dir
from tunewise.records import Record
from tunewise.report.page import render_page, write_report
from tunewise.tracking import metric_key, start_run
from tunewise.train.loop import train

__all__ = [
    "SweepResult",
    "SweepSpec",
    "TrialRecord",
    "load_sweep",
    "render_sweep_markdown",
    "sweep",
    "write_sweep_report",
]


@dataclass(frozen=True)
class TrialRecord(Record):
    """One finished, pruned or failed trial."""

    number: int
    state: str
    value: float | None
    params: dict[str, Any]
    duration_s: float
    last_step: int | None = None
    """The last eval-in-the-loop step reported (where a pruned trial stopped)."""
    last_eval: float | None = None
    adapter_dir: str | None = None
    mlflow_run_id: str | None = None


@dataclass(frozen=True)
class SweepResult(Record):
    """What a sweep found: the best trial's parameters and value, and every trial."""

    sweep_dir: str
    metric_name: str
    direction: str
    best_params: dict[str, Any]
    best_value: float | None
    best_trial: int | None
    trials: list[TrialRecord] = field(default_factory=list)
    mlflow_run_id: str | None = None
    wall_time_s: float = 0.0


TrainFn = Callable[..., Any]
"""``tunewise.train.train`` or anything with its signature (tests inject a fake)."""


@egress.guarded
def sweep(
    project: Project,
    sweep_file: str | Path,
    *,
    dataset: Any = None,
    base_spec: TrainSpec | None = None,
    out_dir: str | Path | None = None,
    train_fn: TrainFn | None = None,
    track: bool = True,
    progress: bool = True,
) -> SweepResult:
    """Run an Optuna sweep of LoRA training and write its results.

    Args:
        project: the loaded spec (gives the dev split, the task metric and the MLflow store).
        sweep_file: the ``sweep.yaml``.
        dataset: passed to every ``train()`` call (a dataset version; default: the project's splits).
        base_spec: the settings not searched nor fixed by the sweep (default: the project's ``train`` section).
        out_dir: the sweep directory (default ``.tunewise/runs/sweep-<id>``); each trial trains into ``trial-NNN/``.
        train_fn: the training function (default :func:`tunewise.train.train`).
        track: log a parent MLflow run with one nested run per trial.
        progress: print one line per finished trial.

    Returns:
        The :class:`SweepResult`, also written as ``sweep.json``, ``sweep.md`` and ``sweep.html`` in the sweep
        directory.

    Raises:
        InputError: the sweep file is invalid (nothing is written then).
    """
    import optuna

    base_spec = base_spec or project.spec.train
    sweep_spec = load_sweep(sweep_file, base_spec=base_spec)
    train_fn = train_fn or train
    sweep_id = f"sweep-{dt.datetime.now(dt.UTC):%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}"
    sweep_dir = Path(out_dir) if out_dir is not None else project.state_dir / "runs" / sweep_id
    if sweep_dir.is_dir() and any(sweep_dir.iterdir()):
        raise InputError("sweep directory exists and is not empty", file=sweep_dir)
    check_output_dir(sweep_dir, reuse_run_dir=False)
    sweep_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(sweep_dir / "sweep.yaml", yaml.safe_dump(sweep_spec.model_dump(mode="json"), sort_keys=False))
    atomic_write_text(
        sweep_dir / "base_config.yaml", yaml.safe_dump(base_spec.model_dump(mode="json"), sort_keys=False)
    )

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.TPESampler(seed=sweep_spec.seed)
    pruner: Any = (
        optuna.pruners.MedianPruner(n_startup_trials=sweep_spec.startup_trials)
        if sweep_spec.pruner == "median"
        else optuna.pruners.NopPruner()
    )
    study = optuna.create_study(direction=sweep_spec.direction, sampler=sampler, pruner=pruner, study_name=sweep_id)
    records: dict[int, dict[str, Any]] = {}
    metric_name = project.spec.primary_metric
    objective = _objective(project, sweep_spec, base_spec, sweep_dir, dataset, train_fn, track, records)
    start = time.monotonic()
    parent_run_id = None
    with _parent_run(project, sweep_id, track) as parent:
        parent_run_id = parent.info.run_id if parent is not None else None
        if parent is not None:
            _log_sweep_params(sweep_spec)
        callbacks = [_print_trial(sweep_spec.budget.trials)] if progress else []
        timeout = sweep_spec.budget.minutes * 60 if sweep_spec.budget.minutes else None
        try:
            study.optimize(objective, n_trials=sweep_spec.budget.trials, timeout=timeout, callbacks=callbacks)
        finally:
            # A failing trial or Ctrl-C still leaves the trials run so far on disk.
            result = _result(
                study, sweep_dir, metric_name, sweep_spec.direction, records, parent_run_id, time.monotonic() - start
            )
            write_sweep_report(result, sweep_dir)
        if parent is not None:
            _log_sweep_result(result, sweep_dir)
    return result


def _objective(
    project: Project,
    sweep_spec: SweepSpec,
    base_spec: TrainSpec,
    sweep_dir: Path,
    dataset: Any,
    train_fn: TrainFn,
    track: bool,
    records: dict[int, dict[str, Any]],
) -> Callable[[Any], float]:
    import optuna

    def objective(trial: Any) -> float:
        values = suggest(trial, sweep_spec.params)
        spec = TrainSpec.model_validate({**base_spec.model_dump(), **sweep_spec.fixed, **values})
        record: dict[str, Any] = {"params": values, "last_step": None}
        records[trial.number] = record

        def on_eval(step: int, metric_value: float) -> None:
            record["last_step"], record["last_eval"] = step, float(metric_value)
            trial.report(float(metric_value), step)
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned at step {step} ({metric_value:.4f})")

        result = train_fn(
            project,
            spec,
            dataset=dataset,
            out_dir=sweep_dir / f"trial-{trial.number:03d}",
            run_name=f"{sweep_dir.name}-trial-{trial.number:03d}",
            track=track,
            nested=True,
            on_eval=on_eval,
        )
        record["adapter_dir"] = str(result.adapter_dir) if result.adapter_dir is not None else None
        record["mlflow_run_id"] = result.mlflow_run_id
        if result.best_metric is None:
            raise optuna.TrialPruned("training produced no task metric (eval_examples = 0?)")
        return float(result.best_metric)

    return objective


def _result(
    study: Any,
    sweep_dir: Path,
    metric_name: str,
    direction: str,
    records: dict[int, dict[str, Any]],
    parent_run_id: str | None,
    wall_time_s: float,
) -> SweepResult:
    import optuna

    trials = []
    for trial in study.trials:
        record = records.get(trial.number, {})
        duration = (trial.datetime_complete - trial.datetime_start).total_seconds() if trial.datetime_complete else 0.0
        trials.append(
            TrialRecord(
                number=trial.number,
                state=trial.state.name.lower(),
                value=trial.value if trial.state == optuna.trial.TrialState.COMPLETE else None,
                params=record.get("params", dict(trial.params)),
                duration_s=round(duration, 3),
                last_step=record.get("last_step"),
                last_eval=record.get("last_eval"),
                adapter_dir=record.get("adapter_dir"),
                mlflow_run_id=record.get("mlflow_run_id"),
            )
        )
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    best = study.best_trial if complete else None
    return SweepResult(
        sweep_dir=str(sweep_dir),
        metric_name=metric_name,
        direction=direction,
        best_params=records[best.number]["params"] if best is not None else {},
        best_value=best.value if best is not None else None,
        best_trial=best.number if best is not None else None,
        trials=trials,
        mlflow_run_id=parent_run_id,
        wall_time_s=round(wall_time_s, 3),
    )


def write_sweep_report(result: SweepResult, sweep_dir: Path) -> None:
    """Write ``sweep.json``, ``sweep.md`` and ``sweep.html`` (best parameters, then every trial), each atomically."""
    atomic_write_text(sweep_dir / "sweep.json", json.dumps(result.to_dict(), indent=2, ensure_ascii=False, default=str))
    names = _param_names(result)
    html = render_page("sweep.html", result=result, names=names, param=_fmt)
    write_report(sweep_dir, render_sweep_markdown(result), html, stem="sweep")


def render_sweep_markdown(result: SweepResult) -> str:
    """The sweep as Markdown: the best trial's value and parameters, and a table of all trials."""
    return render_page("sweep.md.j2", result=result, names=_param_names(result), param=_fmt)


def _param_names(result: SweepResult) -> list[str]:
    return sorted({name for trial in result.trials for name in trial.params})


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return "" if value is None else str(value)


def _parent_run(project: Project, name: str, track: bool) -> Any:
    """The parent MLflow sweep run (yields ``None`` when tracking is off)."""
    if not track:
        return contextlib.nullcontext()

    return start_run(project, name, tags={"tunewise.kind": "sweep"})


def _log_sweep_params(sweep_spec: SweepSpec) -> None:
    import mlflow

    mlflow.log_params({f"sweep.{k}": v for k, v in sweep_spec.fixed.items()})
    mlflow.log_params(
        {
            "sweep.trials": sweep_spec.budget.trials,
            "sweep.minutes": sweep_spec.budget.minutes,
            "sweep.pruner": sweep_spec.pruner,
            "sweep.seed": sweep_spec.seed,
            "sweep.space": json.dumps({k: v.model_dump() for k, v in sweep_spec.params.items()})[:6000],
        }
    )


def _log_sweep_result(result: SweepResult, sweep_dir: Path) -> None:
    import mlflow

    mlflow.log_params({f"best.{k}": v for k, v in result.best_params.items()})
    if result.best_value is not None:
        mlflow.log_metric(metric_key(f"best_{result.metric_name}"), result.best_value)
    mlflow.log_metric("trials_complete", sum(t.state == "complete" for t in result.trials))
    mlflow.log_metric("trials_pruned", sum(t.state == "pruned" for t in result.trials))
    write_sweep_report(result, sweep_dir)
    mlflow.log_artifact(str(sweep_dir / "sweep.json"))
    mlflow.log_artifact(str(sweep_dir / "sweep.md"))
    mlflow.log_artifact(str(sweep_dir / "sweep.html"))


def _print_trial(total: int) -> Callable[[Any, Any], None]:
    from rich.console import Console

    console = Console(stderr=True)

    def callback(study: Any, trial: Any) -> None:
        value = "" if trial.value is None else f" value={trial.value:.4f}"
        best = ""
        with contextlib.suppress(ValueError):
            best = f" best={study.best_value:.4f}"
        console.print(f"[dim]trial {trial.number + 1}/{total}: {trial.state.name.lower()}{value}{best}[/dim]")

    return callback


def suggest(trial: Any, params: dict[str, FloatParam | IntParam | CategoricalParam]) -> dict[str, Any]:
    """Draw one value per parameter from an Optuna trial."""
    values: dict[str, Any] = {}
    for name, param in params.items():
        if isinstance(param, FloatParam):
            values[name] = trial.suggest_float(name, param.low, param.high, log=param.type == "loguniform")
        elif isinstance(param, IntParam):
            values[name] = trial.suggest_int(name, param.low, param.high, step=param.step, log=param.log)
        else:
            # Optuna's categorical choices must be scalars; lists (module sets) are chosen by index.
            if all(c is None or isinstance(c, bool | int | float | str) for c in param.choices):
                values[name] = trial.suggest_categorical(name, param.choices)
            else:
                index = trial.suggest_categorical(f"{name}__index", list(range(len(param.choices))))
                values[name] = param.choices[index]
    return values
