"""`tunewise train` end to end on the embedded model: a few steps on a handful of real receipts, then the comparison."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

ROOT = Path(__file__).resolve().parents[2]
RECEIPTS = ROOT / "examples" / "receipts"


def _shortest(path: Path, n: int) -> list[str]:
    rows = path.read_text(encoding="utf-8").splitlines()
    return sorted(rows, key=len)[:n]


@pytest.mark.integration
def test_train_cli_on_receipts(tmp_path, monkeypatch):
    if not (RECEIPTS / "tunewise.yaml").is_file():
        pytest.skip("examples/receipts is not present")
    from tunewise.cli.main import app

    project = tmp_path / "receipts"
    (project / "data").mkdir(parents=True)
    shutil.copy(RECEIPTS / "schema.json", project / "schema.json")
    (project / "data" / "train.jsonl").write_text("\n".join(_shortest(RECEIPTS / "data" / "train.jsonl", 6)) + "\n")
    (project / "data" / "dev.jsonl").write_text("\n".join(_shortest(RECEIPTS / "data" / "dev.jsonl", 2)) + "\n")
    spec = yaml.safe_load((RECEIPTS / "tunewise.yaml").read_text())
    spec["candidates"] = [c for c in spec["candidates"] if c["prompt"] == "zero_shot"]
    spec["eval"] = {"max_new_tokens": 48, "batch_size": 2, "bootstrap_samples": 200}
    (project / "tunewise.yaml").write_text(yaml.safe_dump(spec))
    settings = {
        "max_steps": 3,
        "micro_batch_size": 2,
        "gradient_accumulation": 1,
        "max_length": 512,
        "rank": 8,
        "alpha": 16,
        "learning_rate": 1e-3,
        "eval_every": 3,
        "eval_examples": 2,
        "eval_max_new_tokens": 48,
        "checkpoint_every": 3,
    }
    (project / "train.yaml").write_text(yaml.safe_dump({"train": settings}))

    uri = f"sqlite:///{(project / '.tunewise').resolve() / 'mlflow.db'}"
    monkeypatch.delenv(
        "MLFLOW_TRACKING_URI", raising=False
    )  # mlflow.set_tracking_uri() exports it: no earlier store leaks in
    monkeypatch.setattr("tunewise.tracking._USER_TRACKING_URI", None)  # the project's default store is `uri`
    result = CliRunner().invoke(
        app, ["train", "-c", str(project), "--train-config", str(project / "train.yaml"), "--name", "ci"]
    )
    assert result.exit_code == 0, result.output + repr(result.exception)

    adapter = project / ".tunewise" / "adapters" / "ci"
    assert (adapter / "adapter_model.safetensors").is_file()
    meta = json.loads((adapter / "metadata.json").read_text())
    assert meta["final_step"] == 3 and meta["mlflow_run_id"] and meta["base_model"] == "smollm2-135m"
    assert "finetuned-ci" in result.output and "zero-shot" in result.output
    summary = json.loads((project / ".tunewise" / "runs" / "train-ci" / "eval-dev" / "summary.json").read_text())
    assert [c["name"] for c in summary["candidates"]] == ["zero-shot", "finetuned-ci"]

    import mlflow

    run = mlflow.MlflowClient(tracking_uri=uri).get_run(meta["mlflow_run_id"])
    assert run.data.tags["base_model"] == "smollm2-135m" and "train/loss" in run.data.metrics
