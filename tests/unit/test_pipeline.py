"""The main job end to end on the tiny in-code model: every stage runs, on the same examples, and is linked."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.train_project import make_project, tiny_spec
from tunewise.config import project_from_dict
from tunewise.serve.requestlog import RequestLog


def _project(root: Path, model_dir: Path):  # type: ignore[no-untyped-def]
    raw = make_project(root, n_train=12, n_dev=10).spec.model_dump(mode="json", exclude_none=True)
    raw["models"] = {"tiny": {"backend": "local", "path": str(model_dir)}}
    raw["candidates"] = [
        {"name": "zero-shot", "model": "tiny"},
        {"name": "2-shot", "model": "tiny", "prompt": "k_shot", "k": 2},
    ]
    raw["eval"] = {"max_new_tokens": 6, "batch_size": 4, "bootstrap_samples": 100}
    raw["targets"] = {"threshold": 0.9}
    raw["train"] = tiny_spec(model_dir, max_steps=2, eval_every=2, checkpoint_every=2).model_dump(
        mode="json", exclude_none=True
    )
    raw["decide"] = {
        "probes": {
            "model": "tiny",
            "chunk": 2,
            "max_examples": 4,
            "k_shot": 2,
            "shot_selection": "random",
            "constrained": False,
        },
        "sufficiency": {"enabled": False},
    }
    raw["serve"] = {"engine": "transformers", "context_length": 512}  # llama.cpp cannot load the tiny model
    return project_from_dict(raw, root)


def _ids(run_dir: Path) -> set[str]:
    return {json.loads(line)["id"] for line in (run_dir / "predictions.jsonl").read_text().splitlines()}


def test_every_stage_runs_on_the_same_examples_and_the_report_links_them(tmp_path: Path, tiny_model_dir: Path) -> None:
    from tunewise.pipeline import run_pipeline

    project = _project(tmp_path / "p", tiny_model_dir)
    result = run_pipeline(project, limit=6, train_steps=2, track=False)
    assert result.baseline.n_examples == 6
    assert result.decision.recommendation == "fine_tune"  # a random tiny model cannot produce the schema's fields
    assert result.dataset is not None and (result.dataset.path / "card.md").is_file()
    assert result.training is not None and (result.training.adapter_dir / "adapter_model.safetensors").is_file()
    assert result.comparison is not None and result.comparison.summary.n_examples == 6
    assert set(result.timings_s) == {"evaluate", "decide", "curate", "train", "evaluate again", "serve", "monitor"}
    served = result.served
    assert served is not None and served.model == result.training.adapter_dir.name and served.n == 3
    assert [a["id"] for a in served.answers] == ["d6", "d7", "d8"]  # held out: after the 6 every stage scored
    with RequestLog(served.log_path) as log:
        assert {e.request_id for e in log.entries()} == set(served.request_ids)
    assert result.champion is None  # untracked: no registry to promote in
    monitored = result.monitored  # three requests: the monitor says so and gives no verdict
    assert monitored is not None and monitored.n_window == 3 and monitored.verdict == "too_few"
    runs = project.state_dir / "runs"
    evaluated = _ids(runs / result.baseline.run_id)
    probed = set().union(*(_ids(runs / r) for p in result.decision.probes for r in p.run_ids))
    assert probed and probed <= evaluated  # decide probes within the examples every other stage scores
    assert result.report_md is not None and result.report_html is not None
    text, page = result.report_md.read_text(), result.report_html.read_text()
    for stage in ("evaluate", "decide", "curate", "train", "evaluate again", "serve", "monitor"):
        assert f"| {stage} |" in text and stage in page
    # The main job's record holds every stage's records and survives JSON as it is.
    assert type(result).from_dict(json.loads(json.dumps(result.to_dict()))) == result


def test_a_budget_trains_on_a_subset_evaluates_fewer_and_the_report_opens_with_the_answer(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    from tunewise.pipeline import TrainBudget, run_pipeline
    from tunewise.pipeline.eta import load_previous_timings

    project = _project(tmp_path / "p", tiny_model_dir)
    budget = TrainBudget(dev_examples=5, train_examples=6, epochs=1.0, full_budget="total accuracy 0.9 (a note)")
    result = run_pipeline(project, budget=budget, serve=False, track=False)
    assert result.budget == budget and result.baseline.n_examples == 5
    training = result.training
    assert training is not None
    # 6 examples, micro-batch 2, accumulation 2: one epoch is 2 optimizer steps (the spec's max_steps is ignored)
    assert training.encode_report.startswith("6 examples") and training.final_step == 2
    assert result.comparison is not None and result.comparison.summary.n_examples == 5
    text = result.report_md.read_text()
    first = next(line for line in text.splitlines()[1:] if line.strip())
    assert first.startswith("**Fine-tuning") and "best prompt" in first
    assert "LoRA on 6 train examples for 1 epoch" in first and "total accuracy 0.9 (a note)" in first
    assert "| candidate |" in text and "| zero-shot |" in text and "schema-valid" in text
    # the next run with this budget can say how long each stage took
    previous = load_previous_timings(project.state_dir / "pipeline", json.dumps(budget.to_dict(), sort_keys=True))
    assert previous == result.timings_s
    assert load_previous_timings(project.state_dir / "pipeline", "full") is None


def test_the_best_prompt_with_similar_shots_joins_the_baselines(tmp_path: Path, tiny_model_dir: Path) -> None:
    from tunewise.pipeline.budget import prompt_baselines

    project = _project(tmp_path / "p", tiny_model_dir)
    assert [c.name for c in prompt_baselines(project)] == ["zero-shot", "2-shot"]  # the probes use random shots
    raw = project.spec.model_dump(mode="json", exclude_none=True)
    raw["decide"]["probes"]["shot_selection"] = "similar"
    similar = prompt_baselines(project_from_dict(raw, project.root))
    assert [c.name for c in similar] == ["zero-shot", "2-shot", "2-shot-similar"]
    added = similar[-1]
    assert (added.model, added.prompt, added.k, added.shot_selection) == ("tiny", "k_shot", 2, "similar")
    raw["candidates"][1]["shot_selection"] = "similar"  # already a candidate: nothing added
    assert [c.name for c in prompt_baselines(project_from_dict(raw, project.root))] == ["zero-shot", "2-shot"]


def test_time_left_comes_from_the_last_run_with_the_same_budget(tmp_path: Path) -> None:
    from tunewise.pipeline.eta import TIMINGS_FILE, clock, load_previous_timings, remaining_s

    root = tmp_path / "pipeline"
    for name, budget, seconds in (("20260101-000000", "small", 10.0), ("20260102-000000", "full", 99.0)):
        (root / name).mkdir(parents=True)
        timings = {"evaluate": seconds, "decide": 5.0, "train": 60.0}
        (root / name / TIMINGS_FILE).write_text(json.dumps({"budget": budget, "timings_s": timings}))
    (root / "20260103-000000").mkdir()  # a run that died before its report: skipped
    (root / "20260103-000000" / TIMINGS_FILE).write_text("{not json")
    previous = load_previous_timings(root, "small")
    assert previous == {"evaluate": 10.0, "decide": 5.0, "train": 60.0}
    assert remaining_s(previous, ["decide", "train"]) == 65.0
    assert remaining_s(previous, ["train", "serve"]) is None  # never ran: no guess
    assert load_previous_timings(root, "other") is None and load_previous_timings(tmp_path / "none", "small") is None
    assert (clock(65), clock(7), clock(3725)) == ("1m05s", "7s", "62m05s")
