"""After training, the adapter is evaluated against the spec's baseline candidates with the paired test."""

from __future__ import annotations

from tests.support.train_project import make_project, tiny_spec
from tunewise.config import project_from_dict
from tunewise.train import train
from tunewise.train.compare import compare_with_baselines


def test_adapter_is_compared_with_baselines(tmp_path, tiny_model_dir):
    base = make_project(tmp_path / "p")
    raw = base.spec.model_dump(mode="json", exclude_none=True)
    raw["models"] = {"tiny": {"backend": "local", "path": str(tiny_model_dir)}}
    raw["candidates"] = [{"name": "zero-shot", "model": "tiny", "prompt": "zero_shot"}]
    raw["eval"] = {"max_new_tokens": 6, "batch_size": 4, "bootstrap_samples": 100}
    project = project_from_dict(raw, base.root)
    result = train(
        project, tiny_spec(tiny_model_dir, max_steps=2, eval_examples=0), run_name="cmp", track=False, progress=False
    )
    outcome = compare_with_baselines(project, result, track=False, progress=False)
    names = [c.name for c in outcome.summary.candidates]
    assert names == ["zero-shot", "finetuned-cmp"]
    assert outcome.best_baseline == "zero-shot"
    assert outcome.comparison is not None and outcome.comparison.b == "finetuned-cmp" and outcome.comparison.n == 4
    assert "finetuned-cmp" in outcome.describe() and "zero-shot" in outcome.describe()
    assert (result.run_dir / "eval-dev" / "summary.json").is_file()
