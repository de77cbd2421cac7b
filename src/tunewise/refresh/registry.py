"""The champion and challenger as MLflow registered-model versions: lookup by alias or run, completeness checks."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunewise.config import Project
from tunewise.errors import InputError
from tunewise.tracking import _mlflow, ensure_experiment, local_artifact_path, tracking_uri

PREVIOUS_ALIAS = "previous-champion"
ADAPTER_FILES = ("adapter_config.json",)
WEIGHT_FILES = ("adapter_model.safetensors", "adapter_model.bin")


@dataclass(frozen=True)
class ModelVersion:
    """One registered version of the project's adapters, as refresh needs it."""

    model: str
    version: str
    source: str
    run_id: str | None
    tags: dict[str, str]
    created: dt.datetime

    @property
    def adapter_dir(self) -> Path | None:
        """The adapter's local directory (``None`` when the artifact store is remote)."""
        return local_artifact_path(self.source)

    @property
    def dataset(self) -> str | None:
        return self.tags.get("dataset")

    @property
    def base_model(self) -> str | None:
        return self.tags.get("base_model")


def client(project: Project) -> Any:
    """An ``MlflowClient`` on the project's tracking and registry store (opened, created when new)."""
    ensure_experiment(project)
    uri = tracking_uri(project)
    return _mlflow().MlflowClient(tracking_uri=uri, registry_uri=uri)


def registered_model(project: Project) -> str:
    return project.spec.registered_model


def _version(found: Any) -> ModelVersion:
    return ModelVersion(
        model=found.name,
        version=str(found.version),
        source=found.source,
        run_id=found.run_id or None,
        tags=dict(found.tags or {}),
        created=dt.datetime.fromtimestamp(found.creation_timestamp / 1000, dt.UTC),
    )


def get_version(project: Project, version: str | int) -> ModelVersion:
    """A version of the project's registered model.

    Raises:
        InputError: no such version.
    """
    mlflow = _mlflow()
    try:
        return _version(client(project).get_model_version(registered_model(project), str(version)))
    except mlflow.exceptions.MlflowException:
        raise InputError(
            f"registered model {registered_model(project)!r} has no version {version}", field="--version"
        ) from None


def alias_version(project: Project, alias: str) -> ModelVersion | None:
    """The version ``alias`` points at, or ``None`` when the alias (or the model) does not exist."""
    mlflow = _mlflow()
    try:
        return _version(client(project).get_model_version_by_alias(registered_model(project), alias))
    except mlflow.exceptions.MlflowException:
        return None


def champion(project: Project) -> ModelVersion | None:
    """The version the spec's ``refresh.alias`` (``champion``) points at."""
    return alias_version(project, project.spec.refresh.alias)


def version_of_run(project: Project, run_id: str) -> ModelVersion | None:
    """The version a training run registered (its latest, if it registered several)."""
    found = client(project).search_model_versions(f"name='{registered_model(project)}' and run_id='{run_id}'")
    versions = sorted((_version(v) for v in found), key=lambda v: int(v.version))
    return versions[-1] if versions else None


def version_of_adapter(project: Project, adapter: str) -> ModelVersion:
    """The latest version registered by the training run that published ``.tunewise/adapters/<adapter>``.

    Raises:
        InputError: no such adapter, or no version of it registered.
    """
    import json

    metadata = project.state_dir / "adapters" / adapter / "metadata.json"
    if not metadata.is_file():
        raise InputError(f"no adapter {adapter!r}", file=metadata.parent, field="--adapter")
    run_id = json.loads(metadata.read_text(encoding="utf-8")).get("mlflow_run_id")
    found = version_of_run(project, run_id) if run_id else None
    if found is None:
        raise InputError(
            f"adapter {adapter!r} has no registered version (trained with --no-track?)", file=metadata.parent
        )
    return found


def register(project: Project, adapter_dir: Path, run_id: str | None, tags: dict[str, str]) -> ModelVersion:
    """Register a published adapter directory as a new version (when its training run died before registering)."""
    mlflow = _mlflow()
    api = client(project)
    name = registered_model(project)
    try:
        api.get_registered_model(name)
    except mlflow.exceptions.MlflowException:
        api.create_registered_model(name, description="LoRA adapters trained by tunewise")
    found = api.create_model_version(name, source=adapter_dir.resolve().as_uri(), run_id=run_id, tags=tags)
    return _version(found)


def check_complete(version: ModelVersion) -> None:
    """Refuse to point an alias at a version whose adapter files are missing or partial.

    Raises:
        InputError: the local adapter directory lacks its config or weights.
    """
    directory = version.adapter_dir
    if directory is None:
        return  # a remote store: MLflow registers a version only after its artifacts are uploaded
    missing = [name for name in ADAPTER_FILES if not (directory / name).is_file()]
    if not any((directory / name).is_file() for name in WEIGHT_FILES):
        missing.append(WEIGHT_FILES[0])
    if missing:
        raise InputError(
            f"version {version.version} of {version.model} is not a complete adapter (missing {', '.join(missing)}): "
            "the alias is left where it is",
            file=directory,
        )
