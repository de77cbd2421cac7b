"""Sweeps: validation with file:line errors, TPE search, pruning through on_eval, budgets, nested MLflow runs."""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tunewise.config import TrainSpec, project_from_dict
from tunewise.errors import InputError
from tunewise.train.sweep import load_sweep, sweep

SWEEP = """\
params:
  learning_rate: {type: loguniform, low: 1.0e-5, high: 1.0e-2}
  rank: {type: categorical, choices: [4, 8, 16]}
  dropout: {type: uniform, low: 0.0, high: 0.3}
fixed:
  max_steps: 20
  eval_every: 5
budget: {trials: 12}
pruner: none
seed: 7
"""


@dataclass
class FakeResult:
    adapter_dir: Path | None
    best_metric: float | None
    mlflow_run_id: str | None = None


class FakeTrain:
    """Stands in for train(): the metric peaks at lr = 1e-3 and rank 16; reports evals like the real loop."""

    def __init__(self, sleep_s: float = 0.0, log_mlflow: bool = False) -> None:
        self.calls: list[dict[str, Any]] = []
        self.sleep_s = sleep_s
        self.log_mlflow = log_mlflow

    def __call__(
        self, project: Any, spec: TrainSpec, *, out_dir: Path, on_eval: Any, nested: bool, run_name: str, **kw: Any
    ) -> FakeResult:
        self.calls.append({"spec": spec, "out_dir": out_dir, "nested": nested, **kw})
        final = 1.0 - abs(math.log10(spec.learning_rate) + 3) / 3 - (16 - spec.rank) / 100 - spec.dropout / 10
        time.sleep(self.sleep_s)
        run_id = None
        if self.log_mlflow:
            from tunewise.tracking import start_run

            with start_run(project, run_name, nested=nested) as run:
                import mlflow

                mlflow.log_metric("field_accuracy", final)
                run_id = run.info.run_id
        for step in range(spec.eval_every, spec.max_steps + 1, spec.eval_every):
            on_eval(step, final * step / spec.max_steps)
        out_dir.mkdir(parents=True)
        return FakeResult(adapter_dir=out_dir / "adapter", best_metric=final, mlflow_run_id=run_id)


@pytest.fixture
def project(tmp_path: Path) -> Any:
    return project_from_dict({"name": "sweep-test", "task": {"kind": "generate"}, "data": {}}, tmp_path)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sweep.yaml"
    path.write_text(text)
    return path


def test_sweep_finds_good_params_and_writes_results(project: Any, tmp_path: Path) -> None:
    fake = FakeTrain()
    result = sweep(project, write(tmp_path, SWEEP), out_dir=tmp_path / "sw", train_fn=fake, track=False, progress=False)
    assert len(result.trials) == 12 and all(t.state == "complete" for t in result.trials)
    values = [t.value for t in result.trials]
    assert result.best_value == max(values)
    assert result.best_params == result.trials[result.best_trial].params
    # The fixed overrides reach every trial; each trial trains into its own directory, as a nested run.
    assert all(c["spec"].max_steps == 20 and c["spec"].eval_every == 5 and c["nested"] for c in fake.calls)
    assert len({c["out_dir"] for c in fake.calls}) == 12
    saved = json.loads((tmp_path / "sw" / "sweep.json").read_text())
    assert saved["best_params"] == result.best_params and len(saved["trials"]) == 12
    markdown = (tmp_path / "sw" / "sweep.md").read_text()
    assert f"Best trial **{result.best_trial}**" in markdown and markdown.count("| complete |") == 12


def test_sweep_is_reproducible_with_its_seed(project: Any, tmp_path: Path) -> None:
    path = write(tmp_path, SWEEP)
    a = sweep(project, path, out_dir=tmp_path / "a", train_fn=FakeTrain(), track=False, progress=False)
    b = sweep(project, path, out_dir=tmp_path / "b", train_fn=FakeTrain(), track=False, progress=False)
    assert [t.params for t in a.trials] == [t.params for t in b.trials]


def test_tpe_beats_its_random_startup(project: Any, tmp_path: Path) -> None:
    text = SWEEP.replace("trials: 12", "trials: 30")
    result = sweep(
        project, write(tmp_path, text), out_dir=tmp_path / "sw", train_fn=FakeTrain(), track=False, progress=False
    )
    first, rest = [t.value for t in result.trials[:10]], [t.value for t in result.trials[10:]]
    assert sum(rest) / len(rest) > sum(first) / len(first)
    assert result.best_value > 0.9


def test_median_pruner_stops_bad_trials_through_on_eval(project: Any, tmp_path: Path) -> None:
    text = SWEEP.replace("pruner: none", "pruner: median\nstartup_trials: 2").replace("trials: 12", "trials: 15")
    fake = FakeTrain()
    result = sweep(project, write(tmp_path, text), out_dir=tmp_path / "sw", train_fn=fake, track=False, progress=False)
    pruned = [t for t in result.trials if t.state == "pruned"]
    assert pruned, "no trial was pruned"
    assert all(t.value is None and t.last_step is not None and t.last_step < 20 for t in pruned)
    assert result.best_trial is not None and result.trials[result.best_trial].state == "complete"


def test_time_budget_stops_starting_trials(project: Any, tmp_path: Path) -> None:
    text = SWEEP.replace("budget: {trials: 12}", "budget: {trials: 50, minutes: 0.005}")
    result = sweep(
        project,
        write(tmp_path, text),
        out_dir=tmp_path / "sw",
        train_fn=FakeTrain(sleep_s=0.1),
        track=False,
        progress=False,
    )
    assert 1 <= len(result.trials) < 10


def test_unknown_parameter_names_file_line_and_key(project: Any, tmp_path: Path) -> None:
    text = SWEEP.replace("  dropout:", "  learning_rat: {type: uniform, low: 0.1, high: 0.2}\n  dropout:")
    path = write(tmp_path, text)
    with pytest.raises(InputError) as info:
        sweep(project, path, out_dir=tmp_path / "sw", train_fn=FakeTrain(), track=False)
    assert info.value.file == str(path) and info.value.line == 4 and info.value.field == "params.learning_rat"
    assert "not a training setting" in str(info.value)
    assert not (tmp_path / "sw").exists()


@pytest.mark.parametrize(
    ("old", "new", "line", "field"),
    [
        ("  max_steps: 20", "  max_step: 20", 6, "fixed.max_step"),
        ("choices: [4, 8, 16]", "choices: [0, 8]", 3, "params.rank"),
        ("low: 0.0, high: 0.3", "low: 0.3, high: 0.1", 4, "params.dropout"),
        ("type: loguniform", "type: log-uniform", 2, "params.learning_rate"),
        ("budget: {trials: 12}", "budget: {trials: 12, hours: 1}", 8, "budget.hours"),
        ("seed: 7", "seed: 7\nsearch: tpe", 11, "search"),
    ],
)
def test_bad_sweep_files_are_clear_errors(tmp_path: Path, old: str, new: str, line: int, field: str) -> None:
    assert old in SWEEP
    path = write(tmp_path, SWEEP.replace(old, new))
    with pytest.raises(InputError) as info:
        load_sweep(path)
    assert (info.value.line, info.value.field) == (line, field), str(info.value)


def test_list_choices_such_as_module_sets(project: Any, tmp_path: Path) -> None:
    text = (
        "params:\n  target_modules: {type: categorical, choices: [[q_proj, v_proj], all-linear]}\n"
        "fixed: {max_steps: 10, eval_every: 5}\nbudget: {trials: 4}\n"
    )
    fake = FakeTrain()
    result = sweep(project, write(tmp_path, text), out_dir=tmp_path / "sw", train_fn=fake, track=False, progress=False)
    assert {str(c["spec"].target_modules) for c in fake.calls} <= {"['q_proj', 'v_proj']", "all-linear"}
    assert all("target_modules" in t.params for t in result.trials)


def test_trials_are_nested_mlflow_runs_under_the_sweep(
    project: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    text = SWEEP.replace("trials: 12", "trials: 3")
    result = sweep(
        project, write(tmp_path, text), out_dir=tmp_path / "sw", train_fn=FakeTrain(log_mlflow=True), progress=False
    )
    from mlflow.tracking import MlflowClient

    from tunewise.tracking import tracking_uri

    client = MlflowClient(tracking_uri(project))
    parent = client.get_run(result.mlflow_run_id)
    assert parent.data.params["best.rank"] == str(result.best_params["rank"])
    assert parent.data.metrics[
        "best_field_accuracy" if "best_field_accuracy" in parent.data.metrics else "best_rouge_l"
    ] == pytest.approx(result.best_value)
    children = [client.get_run(t.mlflow_run_id) for t in result.trials]
    assert all(c.data.tags.get("mlflow.parentRunId") == parent.info.run_id for c in children)


def test_end_to_end_with_the_real_training_loop(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.support.train_project import make_project, tiny_spec

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    project = make_project(tmp_path / "proj", n_train=8, n_dev=2)
    text = (
        "params:\n  learning_rate: {type: loguniform, low: 1.0e-3, high: 5.0e-2}\n"
        "  rank: {type: categorical, choices: [2, 4]}\n"
        "fixed: {max_steps: 2, eval_every: 1}\nbudget: {trials: 2}\npruner: median\nseed: 1\n"
    )
    result = sweep(
        project, write(tmp_path, text), base_spec=tiny_spec(tiny_model_dir), out_dir=tmp_path / "sw", progress=False
    )
    assert [t.state for t in result.trials] == ["complete", "complete"]
    assert all(t.last_step == 2 and t.adapter_dir for t in result.trials)
    for trial in result.trials:
        adapter = Path(trial.adapter_dir)  # type: ignore[arg-type]
        assert (adapter / "adapter_config.json").is_file()
        # a trial's value is the best evaluation its training recorded, so never below its last one
        assert trial.value == json.loads((adapter / "metadata.json").read_text())["best_metric"] >= trial.last_eval
    assert result.best_value == max(t.value for t in result.trials)
    from mlflow.tracking import MlflowClient

    from tunewise.tracking import tracking_uri

    client = MlflowClient(tracking_uri(project))
    for trial in result.trials:
        assert client.get_run(trial.mlflow_run_id).data.tags["mlflow.parentRunId"] == result.mlflow_run_id


def test_a_failing_trial_stops_the_sweep_but_keeps_the_finished_trials(project: Any, tmp_path: Path) -> None:
    fake = FakeTrain()

    def flaky(project: Any, spec: TrainSpec, **kw: Any) -> FakeResult:
        if len(fake.calls) == 2:
            raise RuntimeError("loss is NaN")
        return fake(project, spec, **kw)

    with pytest.raises(RuntimeError, match="NaN"):
        sweep(project, write(tmp_path, SWEEP), out_dir=tmp_path / "sw", train_fn=flaky, track=False, progress=False)
    saved = json.loads((tmp_path / "sw" / "sweep.json").read_text())
    assert [t["state"] for t in saved["trials"]] == ["complete", "complete", "fail"]
