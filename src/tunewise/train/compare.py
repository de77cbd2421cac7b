"""After training: the full eval of the trained adapter against the project's baseline candidates, paired test
included."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunewise.config import CandidateSpec, ModelSpec, Project
from tunewise.eval import evaluate
from tunewise.records import EvalSummary, PairedComparison, Record
from tunewise.train.outputs import TrainResult


@dataclass(frozen=True)
class BaselineComparison(Record):
    """Did the fine-tune beat the best baseline prompt, by how much, and is it significant?"""

    summary: EvalSummary
    finetuned: str
    best_baseline: str | None
    comparison: PairedComparison | None

    @property
    def beat_baseline(self) -> bool:
        c = self.comparison
        return c is not None and c.diff > 0 and c.p_value < 0.05

    def describe(self) -> str:
        metric = self.summary.primary_metric
        tuned = self.summary.candidate(self.finetuned).metrics[metric]
        if self.comparison is None or self.best_baseline is None:
            return f"{self.finetuned}: {metric} {tuned.value:.3f} (no baseline candidate to compare with)"
        base = self.summary.candidate(self.best_baseline).metrics[metric]
        c = self.comparison
        verdict = "beats" if self.beat_baseline else "does not significantly beat"
        return (
            f"{self.finetuned} {verdict} {self.best_baseline}: {metric} {tuned.value:.3f} vs {base.value:.3f} "
            f"(diff {c.diff:+.3f}, 95% CI [{c.ci_low:+.3f}, {c.ci_high:+.3f}], p={c.p_value:.3g}, {c.test}, n={c.n})"
        )


def finetuned_candidate(result: TrainResult, name: str | None = None) -> tuple[CandidateSpec, dict[str, ModelSpec]]:
    """The candidate (zero-shot prompt, as trained) and model spec that load ``result``'s adapter on its base model."""
    model_name = f"{result.adapter_dir.name}-lora"
    model = ModelSpec(backend="local", path=result.base_model, adapter=str(result.adapter_dir))
    # The run name (a project name, an --out directory) may hold characters a candidate name may not.
    default = re.sub(r"[^A-Za-z0-9._-]+", "-", f"finetuned-{result.adapter_dir.name}")[:100]
    candidate = CandidateSpec(name=name or default, model=model_name, prompt="zero_shot")
    return candidate, {model_name: model}


def compare_with_baselines(
    project: Project,
    result: TrainResult,
    *,
    split: str = "dev",
    limit: int | None = None,
    out: Path | None = None,
    track: bool = True,
    baselines: list[CandidateSpec] | None = None,
    **evaluate_kwargs: Any,
) -> BaselineComparison:
    """Evaluate the adapter and every baseline candidate of the spec on ``split`` (one run, same examples).

    The run directory (default ``<train run>/eval-<split>``) holds the predictions, the paired tests and the report.
    ``baselines`` replaces the spec's candidates (e.g. with the best prompt decide probes added).
    """

    candidate, models = finetuned_candidate(result)
    baselines = list(project.spec.candidates if baselines is None else baselines)
    summary = evaluate(
        project,
        split=split,
        limit=limit,
        out=out or result.run_dir / f"eval-{split}",
        candidates=[*baselines, candidate],
        extra_models=models,
        track=track,
        **evaluate_kwargs,
    )
    metric = summary.primary_metric
    base_names = [c.name for c in baselines]
    best = max(base_names, key=lambda n: summary.candidate(n).metrics[metric].value, default=None)
    comparison = None
    for item in summary.comparisons:
        if item.metric == metric and {item.a, item.b} == {best, candidate.name}:
            comparison = item if item.b == candidate.name else _flip(item)
    return BaselineComparison(summary, candidate.name, best, comparison)


def _flip(item: PairedComparison) -> PairedComparison:
    return PairedComparison(
        item.metric, item.b, item.a, -item.diff, -item.ci_high, -item.ci_low, item.p_value, item.test, item.n
    )
