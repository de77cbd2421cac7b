"""What the server finds to serve: the base, adapters on disk, MLflow aliases — with their lineage and versions."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.support.adapters import make_adapter
from tests.unit.test_serve_api import tiny_serve_project
from tunewise.config import Project
from tunewise.serve.catalog import Catalog, scan
from tunewise.tracking import ensure_experiment, tracking_uri


def _register(project: Project, adapter: Path, alias: str) -> str:
    import mlflow

    ensure_experiment(project)
    client = mlflow.MlflowClient(tracking_uri=tracking_uri(project), registry_uri=tracking_uri(project))
    name = f"{project.spec.name}-lora"
    try:
        client.get_registered_model(name)
    except mlflow.exceptions.MlflowException:
        client.create_registered_model(name)
    version = client.create_model_version(name, source=adapter.resolve().as_uri(), run_id=None)
    client.set_registered_model_alias(name, alias, version.version)
    return str(version.version)


def test_base_and_adapters_with_lineage(tiny_model_dir: Path, tmp_path: Path) -> None:
    project = tiny_serve_project(tmp_path / "p", tiny_model_dir)
    adapters = project.state_dir / "adapters"
    make_adapter(tiny_model_dir, adapters / "first", seed=1)
    metadata = json.loads((adapters / "first" / "metadata.json").read_text())
    metadata.update(dataset_hash="d" * 64, mlflow_run_id="run-1", metric="field_accuracy", best_metric=0.5)
    (adapters / "first" / "metadata.json").write_text(json.dumps(metadata))
    make_adapter(tiny_model_dir, adapters / "other-base", seed=2, base_model="some-other-model")
    (adapters / ".tmp-half-written").mkdir()  # an unfinished write is never served
    models = {m.name: m for m in scan(project)}
    assert set(models) == {str(tiny_model_dir), "first"}  # the adapter of another base is skipped
    first = models["first"]
    assert first.kind == "adapter" and first.dataset_hash == "d" * 64 and first.run_id == "run-1"
    assert first.lora_rank == 4 and first.json_schema == project.output_schema
    assert models[str(tiny_model_dir)].json_schema is None  # the base is not trained on the task's schema
    assert first.openai()["tunewise"]["dataset_version"] == "d" * 64


def test_a_changed_adapter_is_a_new_version_and_a_moved_alias_is_seen(tiny_model_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("mlflow")
    project = tiny_serve_project(tmp_path / "p", tiny_model_dir)
    store = project.state_dir / "registry"
    one = make_adapter(tiny_model_dir, store / "v1", seed=1)
    two = make_adapter(tiny_model_dir, store / "v2", seed=2)
    catalog = Catalog.load(project)
    assert catalog.rescan() is None  # nothing changed
    _register(project, one, "champion")
    found = catalog.rescan()
    assert found is not None
    catalog.replace(found)
    champion = catalog.get("tiny-serve-lora@champion")
    assert champion is not None and champion.kind == "alias" and champion.adapter_dir == one.resolve()
    _register(project, two, "champion")  # promote another version: the alias moves
    found = catalog.rescan()
    assert found is not None
    moved = {m.name: m for m in found}["tiny-serve-lora@champion"]
    assert moved.version != champion.version and moved.adapter_dir == two.resolve()
    catalog.replace(found)
    shutil.copytree(one, project.state_dir / "adapters" / "copy-of-v1")  # same files, another name: same version
    found = catalog.rescan()
    assert found is not None
    assert {m.name: m for m in found}["copy-of-v1"].version == champion.version
