"""MLflow tracking: a SQLite store inside the project by default, any MLflow URI when the spec names one."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tunewise.config import Project
from tunewise.records import EvalSummary

# Read once: mlflow.set_tracking_uri() writes MLFLOW_TRACKING_URI into the environment, so reading it later would
# send every project of a process (sweeps, tests) to the first project's store.
_USER_TRACKING_URI = os.environ.get("MLFLOW_TRACKING_URI")


def tracking_uri(project: Project) -> str:
    """The spec's ``tracking.uri``, else ``$MLFLOW_TRACKING_URI``, else ``sqlite:///<project>/.tunewise/mlflow.db``."""
    if project.spec.tracking.uri:
        return project.spec.tracking.uri
    if _USER_TRACKING_URI:
        return _USER_TRACKING_URI
    project.state_dir.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(project.state_dir / 'mlflow.db').resolve()}"


def _mlflow() -> Any:
    os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")
    os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")
    import mlflow

    return mlflow


def ensure_experiment(project: Project) -> str:
    """Set the tracking URI and the project's experiment (artifacts under ``.tunewise/mlartifacts``); return its id."""
    mlflow = _mlflow()
    mlflow.set_tracking_uri(tracking_uri(project))
    name = project.spec.tracking.experiment or project.spec.name
    experiment = mlflow.get_experiment_by_name(name)
    if experiment is not None:
        mlflow.set_experiment(experiment_id=experiment.experiment_id)
        return experiment.experiment_id
    artifact_location = None
    if tracking_uri(project).startswith("sqlite:"):
        artifact_location = (project.state_dir / "mlartifacts").resolve().as_uri()
    experiment_id = mlflow.create_experiment(name, artifact_location=artifact_location)
    mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id


@contextlib.contextmanager
def start_run(
    project: Project, run_name: str, *, nested: bool = False, tags: dict[str, str] | None = None
) -> Iterator[Any]:
    """An MLflow run in the project's experiment; yields the ``mlflow.ActiveRun``."""
    mlflow = _mlflow()
    ensure_experiment(project)
    with mlflow.start_run(run_name=run_name, nested=nested, tags=tags or {}) as run:
        yield run


def metric_key(name: str) -> str:
    """MLflow metric names allow alphanumerics, ``_ - . / :`` and spaces; candidates may use anything."""
    return "".join(ch if ch.isalnum() or ch in "_-./: " else "_" for ch in name)


def log_eval_run(project: Project, summary: EvalSummary, run_dir: Path) -> str:
    """Log one evaluation: params, every metric with its CI bounds, the data hash, the run directory as artifacts."""
    mlflow = _mlflow()
    with start_run(project, f"eval-{summary.split}-{summary.run_id}", tags={"tunewise.stage": "eval"}) as run:
        mlflow.log_params(
            {
                "task_kind": summary.task_kind,
                "split": summary.split,
                "n_examples": summary.n_examples,
                "primary_metric": summary.primary_metric,
                "candidates": ",".join(c.name for c in summary.candidates),
                "run_dir": str(run_dir),
            }
        )
        mlflow.set_tags({"data_file": summary.data_file, "data_sha256": summary.data_sha256})
        metrics: dict[str, float] = {}
        for result in summary.candidates:
            prefix = metric_key(result.name)
            for name, value in {**result.metrics, **{f"field.{k}": v for k, v in result.per_field.items()}}.items():
                metrics[f"{prefix}.{name}"] = value.value
                metrics[f"{prefix}.{name}.ci_low"] = value.ci_low
                metrics[f"{prefix}.{name}.ci_high"] = value.ci_high
            for name, number in result.operational.items():
                if isinstance(number, int | float):
                    metrics[f"{prefix}.{name}"] = float(number)
        for comparison in summary.comparisons:
            key = metric_key(f"paired.{comparison.b}-vs-{comparison.a}.{comparison.metric}")
            metrics[f"{key}.diff"] = comparison.diff
            metrics[f"{key}.p_value"] = comparison.p_value
        mlflow.log_metrics(metrics)
        mlflow.log_artifacts(str(run_dir), artifact_path="run")
        return run.info.run_id
