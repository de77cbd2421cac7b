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
