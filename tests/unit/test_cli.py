"""The CLI turns bad input into one clear line and a non-zero exit, and writes nothing."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from tunewise.cli.main import app

runner = CliRunner()


def test_eval_with_bad_spec_key_exits_non_zero(tmp_path: Path) -> None:
    spec = tmp_path / "tunewise.yaml"
    spec.write_text("name: x\ntask:\n  kind: classify\n  labels: [a]\ndata:\n  dev: d.jsonl\n  colour: red\n")
    result = runner.invoke(app, ["eval", "-c", str(spec)])
    assert result.exit_code == 1
    assert f"{spec}:7: data.colour: unknown key" in result.output
    assert not (tmp_path / ".tunewise").exists()


def test_eval_with_missing_data_file(tmp_path: Path) -> None:
    spec = tmp_path / "tunewise.yaml"
    spec.write_text(
        "name: x\ntask:\n  kind: classify\n  labels: [a]\ndata:\n  dev: d.jsonl\ncandidates:\n  - name: z\n"
    )
    result = runner.invoke(app, ["eval", "-c", str(spec), "--no-track"])
    assert result.exit_code == 1
    assert f"{spec}:6: data.dev: file not found: {tmp_path.resolve() / 'd.jsonl'}" in result.output


def test_report_on_a_non_run_directory(tmp_path: Path) -> None:
    result = runner.invoke(app, ["report", str(tmp_path)])
    assert result.exit_code == 1
    assert "not a run directory" in result.output
