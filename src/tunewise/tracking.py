"""MLflow tracking: a SQLite store inside the project by default, any MLflow URI when the spec names one."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunewise import egress
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
    # MLflow 3 phones home (a lookup of config.mlflow-telemetry.io) unless told not to: tracking stays local.
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    import mlflow

    return mlflow


@contextlib.contextmanager
def store_lock(uri: str) -> Iterator[None]:
    """Hold an exclusive lock on a SQLite store (``<db>.lock`` beside it) across processes; a no-op for other stores.

    MLflow creates and migrates a SQLite store the first time a process opens it, without a lock: two commands started
    together on a fresh project would both run the migration and could leave the store half-migrated for good.
    """
    path = _sqlite_path(uri)
    if path is None:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(f"{path.name}.lock"), "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _sqlite_path(uri: str) -> Path | None:
    if not uri.startswith("sqlite:///"):
        return None
    location = uri.removeprefix("sqlite:///").split("?", 1)[0]
    return Path(location) if location and location != ":memory:" else None


def ensure_experiment(project: Project) -> str:
    """Set the tracking URI and the project's experiment (artifacts under ``.tunewise/mlartifacts``); return its id.

    The store is opened (created and migrated, if new) and the experiment created under :func:`store_lock`, so
    commands started together on one project neither race on the migration nor create the experiment twice.
    """
    uri = tracking_uri(project)
    egress.check_tracking_uri(uri, field="tracking.uri")  # before MLflow connects anywhere
    with store_lock(uri):
        return _ensure_experiment(project, uri)


def _ensure_experiment(project: Project, uri: str) -> str:
    mlflow = _mlflow()
    mlflow.set_tracking_uri(uri)
    name = project.spec.tracking.experiment or project.spec.name
    experiment = mlflow.get_experiment_by_name(name)  # opens the store: creates and migrates a new one
    if experiment is not None:
        mlflow.set_experiment(experiment_id=experiment.experiment_id)
        return experiment.experiment_id
    artifact_location = None
    if uri.startswith("sqlite:"):
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
    tags = {egress.MLFLOW_TAG: egress.label(), **(tags or {})}
    with mlflow.start_run(run_name=run_name, nested=nested, tags=tags) as run:
        yield run


def metric_key(name: str) -> str:
    """MLflow metric names allow alphanumerics, ``_ - . / :`` and spaces; candidates may use anything."""
    return "".join(ch if ch.isalnum() or ch in "_-./: " else "_" for ch in name)


def log_eval_run(project: Project, summary: EvalSummary, run_dir: Path, *, files: Path | None = None) -> str:
    """Log one evaluation: params, every metric with its CI bounds, the data hash, the run directory as artifacts.

    ``files`` is where the run directory's files are now (its temporary twin, before it is renamed to ``run_dir``).
    """
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
        mlflow.log_artifacts(str(files or run_dir), artifact_path="run")
        return run.info.run_id


@dataclass(frozen=True)
class AliasTarget:
    """A registered model version that an alias (``champion``, …) points at."""

    model: str
    alias: str
    version: str
    source: str
    """Where the version's files are (an artifact URI)."""
    run_id: str | None
    tags: dict[str, str]


def registered_aliases(project: Project) -> list[AliasTarget]:
    """Every alias of every registered model in the project's tracking store; empty when there is no store yet.

    Reads only: a project that never tracked anything gets no store created.
    """
    uri = tracking_uri(project)
    sqlite = _sqlite_path(uri)
    if sqlite is not None and not sqlite.is_file():
        return []
    egress.check_tracking_uri(uri, field="tracking.uri")
    client = _mlflow().MlflowClient(tracking_uri=uri, registry_uri=uri)
    targets = []
    for model in client.search_registered_models():
        for alias, version in sorted((model.aliases or {}).items()):
            found = client.get_model_version(model.name, str(version))
            targets.append(
                AliasTarget(
                    model=model.name,
                    alias=alias,
                    version=str(version),
                    source=found.source,
                    run_id=found.run_id,
                    tags=dict(found.tags or {}),
                )
            )
    return targets


def local_artifact_path(source: str) -> Path | None:
    """The local directory an artifact URI names (``file://`` or a plain path), or ``None`` for a remote store."""
    if source.startswith("file://"):
        from urllib.parse import unquote, urlparse

        return Path(unquote(urlparse(source).path))
    if "://" not in source:
        return Path(source)
    return None
