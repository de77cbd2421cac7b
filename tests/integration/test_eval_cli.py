"""The real embedded model on a handful of receipts, through the installed CLI."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.integration
def test_eval_cli_on_receipts_with_embedded_model(tmp_path: Path) -> None:
    project = tmp_path / "receipts"
    shutil.copytree(ROOT / "examples" / "receipts", project, ignore=shutil.ignore_patterns(".tunewise"))
    out = tmp_path / "run"
    cli = [sys.executable, "-m", "tunewise.cli.main"]
    done = subprocess.run(
        [*cli, "eval", "-c", str(project), "--limit", "2", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_examples"] == 2
    assert [c["name"] for c in summary["candidates"]] == ["zero-shot", "3-shot"]
    for candidate in summary["candidates"]:
        accuracy = candidate["metrics"]["field_accuracy"]
        assert accuracy["ci_low"] <= accuracy["value"] <= accuracy["ci_high"] and accuracy["n"] == 2
        assert candidate["operational"]["tokens_per_s"] > 0
    assert any(c["metric"] == "field_accuracy" for c in summary["comparisons"])
    predictions = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert len(predictions) == 4 and all(p["completion_tokens"] > 0 for p in predictions)
    assert "Paired comparisons" in (out / "report.md").read_text()
    assert (project / ".tunewise" / "mlflow.db").is_file()

    # identical inputs: the second run generates nothing and gives the same numbers
    again = subprocess.run(
        [*cli, "eval", "-c", str(project), "--limit", "2", "--out", str(tmp_path / "run2"), "--no-track"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert again.returncode == 0, again.stderr[-3000:]
    second = json.loads((tmp_path / "run2" / "summary.json").read_text())
    assert second["candidates"][0]["metrics"] == summary["candidates"][0]["metrics"]
