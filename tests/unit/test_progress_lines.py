"""Long work writes plain progress lines when its output is not a terminal (``tunewise train > train.log``)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.support.receipts import receipts_project, right_answer
from tests.support.train_project import make_project, tiny_spec
from tunewise.cli.main import app
from tunewise.data.build import prepare
from tunewise.eval import evaluate
from tunewise.models import MockBackend
from tunewise.train import train


@pytest.fixture(autouse=True)
def default_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TUNEWISE_PROGRESS_EVERY_S", raising=False)


def progress_lines(text: str, prefix: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(prefix)]


def test_train_writes_first_and_last_step_with_loss_and_throughput(
    tmp_path: Path, tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = make_project(tmp_path / "p")
    train(project, tiny_spec(tiny_model_dir, max_steps=4, eval_every=4), run_name="logged", track=False)
    lines = progress_lines(capsys.readouterr().err, "train step ")
    assert len(lines) >= 2
    first, last = lines[0], lines[-1]
    pattern = r"train step {} \({}\) loss \d+\.\d{{4}} lr \S+ tok/s \d+"
    assert re.match(pattern.format("1/4", r"25\.0%") + r" .*eta ", first), first
    assert re.match(pattern.format("4/4", r"100\.0%") + r" eval/field_accuracy \d\.\d{4} took ", last), last


def test_train_without_progress_writes_nothing(
    tmp_path: Path, tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = make_project(tmp_path / "p")
    train(project, tiny_spec(tiny_model_dir, max_steps=2), run_name="quiet", track=False, progress=False)
    assert progress_lines(capsys.readouterr().err, "train ") == []


def test_eval_writes_each_candidates_progress(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    project = receipts_project(tmp_path)
    backends = {"echo": MockBackend(respond=right_answer), "bad": MockBackend(["no json"])}
    evaluate(project, out=tmp_path / "run", backends=backends, track=False)
    lines = progress_lines(capsys.readouterr().err, "eval ")
    for name in ("good", "poor"):
        mine = [line for line in lines if line.startswith(f"eval {name} ")]
        assert mine[0].startswith(f"eval {name} 1/4 (25.0%) "), mine
        assert mine[-1].startswith(f"eval {name} 4/4 (100.0%) ") and " took " in mine[-1], mine


def test_prepare_writes_its_steps(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    project = make_project(tmp_path / "p")
    prepare(project)
    lines = progress_lines(capsys.readouterr().err, "prepare step ")
    assert lines[0] == "prepare step 0/6 (0.0%) now load and validate eta ?"
    assert lines[-1].startswith("prepare step 6/6 (100.0%) now done took ")
    prepare(project)  # the same version again: nothing to do, nothing shown
    assert progress_lines(capsys.readouterr().err, "prepare ") == []


CLASSIFY_SPEC = """\
name: cli-progress
task: {kind: classify, labels: [alpha, beta]}
data: {dev: dev.jsonl, target_field: label}
targets: {threshold: 0.9}
models:
  scripted: {backend: mock, outputs: [alpha]}
candidates:
  - {name: scripted, model: scripted}
"""


def classify_project(root: Path) -> Path:
    rows = [{"id": f"r{i}", "text": f"row {i}", "label": "alpha" if i % 2 else "beta"} for i in range(16)]
    (root / "dev.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    (root / "tunewise.yaml").write_text(CLASSIFY_SPEC, encoding="utf-8")
    return root


def test_eval_command_output_is_a_readable_log(tmp_path: Path) -> None:
    project = classify_project(tmp_path)
    result = CliRunner().invoke(app, ["eval", "-c", str(project), "--no-track", "--limit", "10"])
    assert result.exit_code == 0, result.output
    lines = progress_lines(result.stderr, "eval scripted ")
    assert lines[0].startswith("eval scripted 1/10 (10.0%) "), result.stderr
    assert re.match(r"eval scripted 10/10 \(100\.0%\) ex/s \d+ took \d+s$", lines[-1]), result.stderr
    assert not re.search(r"━ \d+/\d+", result.output)  # no bar drawn into a log


def test_decide_command_writes_each_probe_round(tmp_path: Path) -> None:
    project = classify_project(tmp_path)
    args = ["decide", "-c", str(project), "--no-track", "--no-sufficiency", "--chunk", "4", "--max-examples", "8"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    lines = progress_lines(result.stderr, "decide prompts ")
    assert lines[0].startswith("decide prompts 4/8 (50.0%) best "), result.stderr
    assert re.match(r"decide prompts 8/8 \(100\.0%\) best \S+ accuracy \d\.\d{4} ex/s \S+ took ", lines[-1])


def test_the_data_sufficiency_probe_writes_each_short_run(capsys: pytest.CaptureFixture[str]) -> None:
    from tunewise.config import SufficiencySpec
    from tunewise.decide.sufficiency_probe import TrainPoint, sufficiency_probe

    def short_run(size: int) -> TrainPoint:
        return TrainPoint(size, size / 100, tokens_per_s=250.4, train_tokens=size, seconds=0.0)

    spec = SufficiencySpec(subsets=[16, 32, 64])
    sufficiency_probe(None, spec, 0.85, 465, short_run, "t")  # type: ignore[arg-type]
    lines = progress_lines(capsys.readouterr().err, "decide data sufficiency ")
    assert lines[0].startswith("decide data sufficiency 1/3 (33.3%) n 16 metric 0.1600 tok/s 250 eta ")
    assert lines[-1].startswith("decide data sufficiency 3/3 (100.0%) n 64 metric 0.6400 tok/s 250 took ")
