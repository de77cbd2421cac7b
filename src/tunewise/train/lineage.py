"""MLflow lineage of a training run: resolved config, per-step metrics, dataset hash, adapter artifact, model version.

Only the main process logs; other processes get a tracker that does nothing.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tunewise import egress
from tunewise.config import Project
from tunewise.data.versions import load_version, log_dataset_version
from tunewise.tracking import _mlflow, ensure_experiment, metric_key


class RunTracker:
    """Logs to the active MLflow run, or does nothing when tracking is off (``run_id`` is then ``None``)."""

    def __init__(self, mlflow: Any = None, run_id: str | None = None) -> None:
        self._mlflow = mlflow
        self.run_id = run_id

    def params(self, params: dict[str, Any]) -> None:
        if self._mlflow is not None:
            self._mlflow.log_params({k: json.dumps(v) if isinstance(v, (list, dict)) else v for k, v in params.items()})

    def tags(self, tags: dict[str, str]) -> None:
        if self._mlflow is not None:
            self._mlflow.set_tags(tags)

    def metrics(self, values: dict[str, float], step: int) -> None:
        if self._mlflow is not None:
            self._mlflow.log_metrics({metric_key(k): float(v) for k, v in values.items()}, step=step)

    def artifacts(self, directory: Path, path: str) -> None:
        if self._mlflow is not None:
            self._mlflow.log_artifacts(str(directory), artifact_path=path)

    def dataset_version(self, project: Project, ref: str, split: str) -> None:
        """Record the dataset version trained on as an MLflow dataset input of the run."""
        if self._mlflow is not None:
            log_dataset_version(load_version(project, ref), context="training", split=split)

    def register(self, model_name: str, artifact_path: str, tags: dict[str, str]) -> str | None:
        """Register the logged artifact as a new version of ``model_name``; return the version number."""
        if self._mlflow is None or self.run_id is None:
            return None
        # A PEFT directory is a plain artifact, not an MLflow "logged model", so mlflow.register_model refuses it;
        # the registry client registers any artifact location as a version.
        client = self._mlflow.MlflowClient()
        try:
            client.get_registered_model(model_name)
        except self._mlflow.exceptions.MlflowException:
            client.create_registered_model(model_name, description="LoRA adapters trained by tunewise")
        source = f"{self._mlflow.get_artifact_uri()}/{artifact_path}"
        version = client.create_model_version(model_name, source=source, run_id=self.run_id, tags=tags)
        return str(version.version)


@contextlib.contextmanager
def tracked_run(
    project: Project, run_name: str, *, enabled: bool, nested: bool = False, resume_run_id: str | None = None
) -> Iterator[RunTracker]:
    """Open (or, on resume, reopen) the MLflow run of a training run; a no-op tracker when ``enabled`` is false."""
    if not enabled:
        yield RunTracker()
        return

    mlflow = _mlflow()
    ensure_experiment(project)
    if resume_run_id is not None:
        with mlflow.start_run(run_id=resume_run_id, nested=nested) as run:
            if not egress.is_on():  # a run begun under the guard and resumed without it no longer qualifies
                mlflow.set_tag(egress.MLFLOW_TAG, "off")
            yield RunTracker(mlflow, run.info.run_id)
        return
    tags = {"tunewise.stage": "train", egress.MLFLOW_TAG: egress.label()}
    with mlflow.start_run(run_name=run_name, nested=nested, tags=tags) as run:
        yield RunTracker(mlflow, run.info.run_id)
