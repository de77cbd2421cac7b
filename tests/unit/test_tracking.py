"""MLflow tracking against a real SQLite store inside the project directory."""

from __future__ import annotations

from pathlib import Path

from tests.support.receipts import receipts_project, right_answer
from tunewise.eval import evaluate
from tunewise.models import MockBackend
from tunewise.tracking import tracking_uri


def test_eval_run_is_logged_to_sqlite_store(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    import mlflow

    project = receipts_project(tmp_path)
    backends = {
        "echo": MockBackend(respond=right_answer),
        "bad": MockBackend(['{"company": "ACME SDN BHD"}', "no json"]),
    }
    summary = evaluate(project, backends=backends, progress=False)
    assert tracking_uri(project) == f"sqlite:///{tmp_path.resolve() / '.tunewise' / 'mlflow.db'}"
    assert (tmp_path / ".tunewise" / "mlflow.db").is_file()
    client = mlflow.MlflowClient(tracking_uri(project))
    run = client.get_run(summary.mlflow_run_id)
    assert run.data.metrics["good.field_accuracy"] == 1.0
    # poor gets one field in eight right: an interval that is not a single point, logged as computed
    poor = summary.candidate("poor").metrics["field_accuracy"]
    assert poor.ci_low < poor.value < poor.ci_high
    logged = [run.data.metrics[f"poor.field_accuracy{suffix}"] for suffix in ("", ".ci_low", ".ci_high")]
    assert logged == [poor.value, poor.ci_low, poor.ci_high]
    assert run.data.tags["data_sha256"] == summary.data_sha256
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "run")}
    assert {"run/summary.json", "run/predictions.jsonl", "run/report.html"} <= artifacts
    assert (tmp_path / ".tunewise" / "mlartifacts").is_dir()
