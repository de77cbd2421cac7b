"""Commands started together on a fresh project share one MLflow SQLite store without breaking it."""

from __future__ import annotations

import multiprocessing
from pathlib import Path
from typing import Any

import pytest

from tests.support.receipts import receipts_project

PROCESSES = 4


def _log_one_run(spec: dict[str, Any], root: str, index: int, barrier: Any, results: Any) -> None:
    """In a process of its own: wait for the others, then initialise the project's store and log one run."""
    try:
        from tunewise.config import project_from_dict
        from tunewise.tracking import _mlflow, start_run

        mlflow = _mlflow()  # imported before the barrier: the race is between the store initialisations
        project = project_from_dict(spec, root)
        barrier.wait(timeout=120)
        with start_run(project, f"run-{index}"):
            mlflow.log_metric("index", index)
        results.put((index, "ok"))
    except BaseException as exc:  # reported to the parent, which asserts on it
        results.put((index, f"{type(exc).__name__}: {exc}"))


def test_concurrent_commands_on_a_fresh_project_share_one_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The project's own store, not one an earlier test pointed MLflow at: the spawned workers inherit this
    # environment and read it when they import tunewise (before any code of theirs runs).
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    project = receipts_project(tmp_path)
    spec = project.spec.model_dump(mode="json", exclude_none=True)
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(PROCESSES), context.Queue()
    workers = [
        context.Process(target=_log_one_run, args=(spec, str(tmp_path), i, barrier, results)) for i in range(PROCESSES)
    ]
    for worker in workers:
        worker.start()
    outcomes = dict(results.get(timeout=300) for _ in workers)
    for worker in workers:
        worker.join(timeout=60)
    assert outcomes == {i: "ok" for i in range(PROCESSES)}

    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{tmp_path.resolve() / '.tunewise' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(project.spec.name)
    runs = client.search_runs([experiment.experiment_id])
    assert sorted(r.data.metrics["index"] for r in runs) == list(range(PROCESSES))
