"""The data-sufficiency probe: short LoRA runs on growing subsets of train, then :func:`estimate_needed`."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from tunewise.config import Project, SufficiencySpec
from tunewise.decide.record import ProbeRecord
from tunewise.decide.sufficiency import SufficiencyEstimate, estimate_needed
from tunewise.records import Record
from tunewise.report.progress import ProgressDisplay
from tunewise.train.loop import train


@dataclass(frozen=True)
class TrainPoint(Record):
    """One short training run: its size and what it measured."""

    size: int
    metric: float | None
    tokens_per_s: float
    train_tokens: int
    seconds: float
    run_id: str | None = None
    per_example: dict[str, float] | None = None
    """The metric per dev example id: runs scored on the same examples are compared pairwise."""


TrainFn = Callable[[int], TrainPoint]


def steps_for(size: int, spec: SufficiencySpec) -> int:
    """``epochs`` passes over ``size`` examples, capped at ``max_steps``."""
    return max(1, min(spec.max_steps, math.ceil(spec.epochs * size / spec.batch_size)))


def capped_sizes(sizes: list[int], spec: SufficiencySpec) -> list[int]:
    """The sizes that ``max_steps`` cuts short of ``epochs`` passes (``max_steps * batch_size < epochs * size``)."""
    return [s for s in sizes if spec.max_steps * spec.batch_size < spec.epochs * s]


def default_train_fn(project: Project, spec: SufficiencySpec, tag: str) -> TrainFn:
    """Short runs of :func:`tunewise.train.train` (``max_steps`` from ``decide.sufficiency``), one adapter per size."""
    base = project.spec.train

    def run(size: int) -> TrainPoint:
        steps = steps_for(size, spec)
        short = base.model_copy(
            update={
                "max_steps": steps,
                "eval_every": steps,
                "checkpoint_every": steps,
                "eval_examples": spec.eval_examples,
                "early_stopping_patience": None,
                "micro_batch_size": spec.batch_size,
                "gradient_accumulation": 1,
            }
        )
        result = train(project, short, subset=size, run_name=f"decide-{tag}-n{size}", track=False, progress=False)
        best = result.run_dir / "best" / "best.json"
        per_example = json.loads(best.read_text()).get("per_example") if best.is_file() else None
        return TrainPoint(
            size,
            result.best_metric,
            result.tokens_per_s,
            result.train_tokens,
            result.wall_time_s,
            result.mlflow_run_id,
            per_example,
        )

    return run


def paired_rise_se(first: TrainPoint, last: TrainPoint) -> float | None:
    """Standard error of ``last - first`` from per-example differences, when both runs scored the same examples.

    Every run is scored on the same dev sample, so the examples' own difficulty cancels out of the difference: the
    paired error is far smaller than two independent binomial errors.
    """
    if (
        not first.per_example
        or not last.per_example
        or set(first.per_example) != set(last.per_example)
        or len(first.per_example) < 2
    ):
        return None
    diffs = np.array([last.per_example[k] - first.per_example[k] for k in first.per_example])
    return float(diffs.std(ddof=1) / math.sqrt(len(diffs)))


def sufficiency_probe(
    project: Project, spec: SufficiencySpec, target: float, train_size: int, train_fn: TrainFn | None, tag: str
) -> tuple[SufficiencyEstimate, list[TrainPoint], ProbeRecord]:
    """Run the subsets that fit the train split and fit the learning curve; degrade to ``unknown`` with the reason.

    The estimate carries ``train_size`` and, when a curve was fitted, its value there (``predicted_at_train_size``).
    """
    start = time.perf_counter()
    sizes = [s for s in spec.subsets if s <= train_size]
    name = "data sufficiency"
    points: list[TrainPoint] = []
    error = None
    display = ProgressDisplay("decide").start()
    runs = display.task(name, len(sizes))
    try:
        fn = train_fn or default_train_fn(project, spec, tag)
        for size in sizes:
            points.append(fn(size))
            runs.advance(1, _point_stats(points[-1]))
    except ImportError as exc:
        error = f"training is not available: {exc}"
    except Exception as exc:  # any training failure must degrade the node to unknown, with its reason
        failed_at = sizes[len(points)] if len(points) < len(sizes) else "?"
        error = f"training failed at n={failed_at}: {type(exc).__name__}: {exc}"
    display.close()
    usable = [p for p in points if p.metric is not None]
    capped = capped_sizes(sizes, spec)
    if len(usable) < 2:
        if error is not None:
            why = error
        elif len(sizes) < 2:
            why = f"only {len(sizes)} subset size(s) fit the {train_size} train examples"
        else:
            why = "the runs reported no metric"
        estimate = SufficiencyEstimate(
            status="unknown",
            reason=why,
            target=target,
            sizes=[p.size for p in usable],
            values=[p.metric for p in usable],
        )  # type: ignore[misc]
    else:
        estimate = estimate_needed(
            [p.size for p in usable],
            [float(p.metric) for p in usable],
            target,  # type: ignore[arg-type]
            eval_n=spec.eval_examples,
            samples=spec.bootstrap,
            capped_sizes=capped,
            rise_se=paired_rise_se(usable[0], usable[-1]),
        )
    stopped = "failed" if error else f"{len(points)} runs"
    if capped:
        stopped += (
            f"; max_steps {spec.max_steps} × batch {spec.batch_size} < {spec.epochs:g} epoch(s) at "
            f"n={', '.join(str(c) for c in capped)}: not every size trained alike"
        )
    record = ProbeRecord(
        name=name,
        candidates=[f"lora-n{p.size}" for p in points],
        n=len(points),
        seconds=time.perf_counter() - start,
        run_ids=[p.run_id for p in points if p.run_id],
        stopped=stopped,
        error=error,
        extra={
            "points": [p.to_dict() for p in points],
            "steps": {str(s): steps_for(s, spec) for s in sizes},
            "capped_sizes": capped,
        },
    )
    return _at_train_size(estimate, train_size), points, record


def _point_stats(point: TrainPoint) -> dict[str, float | str]:
    """The latest short run's size and dev score, for the probe's progress line."""
    score = point.metric if point.metric is not None else "none"
    return {"n": point.size, "metric": score, "tok/s": round(point.tokens_per_s)}


def _at_train_size(estimate: SufficiencyEstimate, train_size: int) -> SufficiencyEstimate:
    fit = estimate.fit
    predicted = fit.a - fit.b * train_size**-fit.c if fit is not None and train_size else None
    return replace(estimate, train_size=train_size, predicted_at_train_size=predicted)
