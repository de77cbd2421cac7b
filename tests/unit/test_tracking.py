"""MLflow tracking against a real SQLite store inside the project directory."""

from __future__ import annotations

from pathlib import Path

from tests.unit.test_eval_runner import _answer, _project
from tunewise.eval import evaluate
from tunewise.models import MockBackend
from tunewise.tracking import tracking_uri


def test_eval_run_is_logged_to_sqlite_store(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    import mlflow

    project = _project(tmp_path)
    summary = evaluate(
        project, candidates=[project.spec.candidates[0]], backends={"echo": MockBackend(respond=_answer)}, progress=False
    )
    assert tracking_uri(project) == f"sqlite:///{tmp_path.resolve() / '.tunewise' / 'mlflow.db'}"
    assert (tmp_path / ".tunewise" / "mlflow.db").is_file()
    client = mlflow.MlflowClient(tracking_uri(project))
    run = client.get_run(summary.mlflow_run_id)
    assert run.data.metrics["good.field_accuracy"] == 1.0
    assert run.data.metrics["good.field_accuracy.ci_low"] <= 1.0
    assert run.data.tags["data_sha256"] == summary.data_sha256
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "run")}
    assert {"run/summary.json", "run/predictions.jsonl", "run/report.html"} <= artifacts
    assert (tmp_path / ".tunewise" / "mlartifacts").is_dir()
