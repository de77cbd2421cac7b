"""What the server can serve: the base model, every adapter in ``.tunewise/adapters/``, every MLflow alias.

A :class:`ServedModel` carries its lineage (dataset version, training run) and a ``version`` (the SHA-256 of its
files) that the request log records, so traffic is never mixed across versions of one name.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunewise.config import Project
from tunewise.models.embedded import resolve_model_path
from tunewise.models.local import directory_sha256
from tunewise.records import Record
from tunewise.tracking import local_artifact_path, registered_aliases

logger = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class ServedModel(Record):
    """One name the server answers to."""

    name: str
    kind: str
    """``base``, ``adapter`` (a directory in ``.tunewise/adapters``) or ``alias`` (``<registered model>@<alias>``)."""
    base: str
    version: str
    """SHA-256 of the model's (base) or the adapter's files."""
    created: int
    adapter_dir: Path | None = None
    dataset_hash: str | None = None
    run_id: str | None = None
    metric: str | None = None
    best_metric: float | None = None
    lora_rank: int | None = None
    json_schema: dict[str, Any] | None = None
    """Applied when a request sets no ``response_format``: an adapter trained on the project's ``extract`` task."""

    def openai(self) -> dict[str, Any]:
        """The ``/v1/models`` entry: OpenAI's fields plus the lineage under ``tunewise``."""
        lineage = {
            "kind": self.kind,
            "base": self.base,
            "version": self.version,
            "dataset_version": self.dataset_hash,
            "training_run": self.run_id,
            "metric": self.metric,
            "best_metric": self.best_metric,
            "structured_output": self.json_schema is not None,
        }
        return {
            "id": self.name,
            "object": "model",
            "created": self.created,
            "owned_by": "tunewise",
            "tunewise": lineage,
        }


def base_model_name(project: Project) -> str:
    return project.spec.train.base_model


def scan(project: Project) -> list[ServedModel]:
    """The base, the project's adapters trained on that base, and the MLflow aliases pointing at such adapters.

    Adapters of another base are skipped (one server serves one base) with a log line; an alias whose files are
    not on this machine too.
    """
    base = base_model_name(project)
    base_dir = resolve_model_path(base)
    models = [
        ServedModel(
            name=base,
            kind="base",
            base=base,
            version=directory_sha256(base_dir),
            created=int((base_dir / "config.json").stat().st_mtime),
        )
    ]
    adapters = project.state_dir / "adapters"
    for directory in sorted(adapters.iterdir()) if adapters.is_dir() else []:
        if directory.name.startswith(".") or not (directory / "adapter_config.json").is_file():
            continue
        model = _adapter(project, directory.name, "adapter", directory, base)
        if model is not None:
            models.append(model)
    for target in _aliases(project):
        directory = local_artifact_path(target.source)
        if directory is None or not (directory / "adapter_config.json").is_file():
            logger.warning("alias %s@%s: no adapter files at %s", target.model, target.alias, target.source)
            continue
        model = _adapter(project, f"{target.model}@{target.alias}", "alias", directory, base, run_id=target.run_id)
        if model is not None:
            models.append(model)
    return models


def _aliases(project: Project) -> list[Any]:
    try:
        return registered_aliases(project)
    except Exception as error:  # a tracking store that cannot be read must not take the adapters down with it
        logger.warning("MLflow aliases not read: %s", error)
        return []


def _adapter(
    project: Project, name: str, kind: str, directory: Path, base: str, *, run_id: str | None = None
) -> ServedModel | None:
    metadata = _read_json(directory / "metadata.json")
    config = _read_json(directory / "adapter_config.json")
    trained_on = metadata.get("base_model") or config.get("base_model_name_or_path")
    if trained_on != base:
        logger.warning("adapter %s was trained on %s, not on the served base %s: skipped", name, trained_on, base)
        return None
    return ServedModel(
        name=name,
        kind=kind,
        base=base,
        version=directory_sha256(directory),
        created=int((directory / "adapter_config.json").stat().st_mtime),
        adapter_dir=directory,
        dataset_hash=metadata.get("dataset_hash"),
        run_id=run_id or metadata.get("mlflow_run_id"),
        metric=metadata.get("metric"),
        best_metric=metadata.get("best_metric"),
        lora_rank=config.get("r"),
        json_schema=project.output_schema if project.spec.task.kind == "extract" else None,
    )


def _read_json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


@dataclass
class Catalog:
    """The current models by name; :meth:`refresh` rescans and says whether anything changed."""

    project: Project
    models: dict[str, ServedModel]
    scanned_at: float = 0.0

    @classmethod
    def load(cls, project: Project) -> Catalog:
        return cls(project, {m.name: m for m in scan(project)}, time.monotonic())

    def rescan(self) -> list[ServedModel] | None:
        """The models found now, or ``None`` when nothing changed (same names, same versions)."""
        found = scan(self.project)
        self.scanned_at = time.monotonic()
        if {m.name: m.version for m in found} == {n: m.version for n, m in self.models.items()}:
            return None
        return found

    def replace(self, models: list[ServedModel]) -> None:
        """Serve ``models`` from now on (call once the engine has them loaded)."""
        self.models = {m.name: m for m in models}

    def get(self, name: str) -> ServedModel | None:
        return self.models.get(name)
