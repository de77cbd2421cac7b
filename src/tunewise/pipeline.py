"""The main job: the whole pipeline that exists so far, on one project (by default the receipts example).

evaluate the baselines → decide → curate a dataset version → train (when the decision says so) → evaluate the
fine-tune against the baselines with a paired test → promote it to the champion alias when it beats them → serve the
model and query it with the ``openai`` client → monitor the served traffic against the champion's data → one report
that links every stage's own report.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.rule import Rule

from tunewise import egress
from tunewise.config import DecideSpec, Project, load_project
from tunewise.data import DatasetVersion, prepare
from tunewise.decide import ACTIONS, Decision, decide
from tunewise.errors import InputError
from tunewise.eval import evaluate
from tunewise.examples import load_examples
from tunewise.io.outputs import check_output_root, mark_run_dir
from tunewise.monitor import DriftReport, monitor
from tunewise.records import EvalSummary, Record
from tunewise.refresh import promote
from tunewise.report.console import print_summary
from tunewise.report.page import render_page, write_report
from tunewise.serve import start_server
from tunewise.serve.catalog import base_model_name
from tunewise.serve.query import ServedQueries, query_served
from tunewise.train import TrainResult, compare_with_baselines, train
from tunewise.train.compare import BaselineComparison

console = Console(stderr=True)


@dataclass(frozen=True, kw_only=True)
class PipelineResult(Record):
    """What the main job produced: every stage's records, the time each stage took, and the pipeline report."""

    project: str
    baseline: EvalSummary
    decision: Decision
    dataset: DatasetVersion
    training: TrainResult | None = None
    """``None`` when the decision was not to fine-tune."""
    comparison: BaselineComparison | None = None
    served: ServedQueries | None = None
    """The served model's answers to a few held-out examples (``None`` when serving was skipped)."""
    champion: str | None = None
    """The registered version the champion alias was moved to (``None``: no fine-tune beat the baselines, or
    tracking was off)."""
    monitored: DriftReport | None = None
    """The served traffic against the champion's reference data (``None`` when serving was skipped)."""
    timings_s: dict[str, float]
    report_md: Path | None = None
    report_html: Path | None = None


def default_example_dir() -> Path:
    """``examples/receipts`` of the repository this package was installed from, else of the working directory."""
    for base in (Path(__file__).resolve().parents[2], Path.cwd()):
        candidate = base / "examples" / "receipts"
        if (candidate / "tunewise.yaml").is_file():
            return candidate
    raise InputError("the receipts example was not found: run from the repository root or pass --project")


@egress.guarded
def run_pipeline(
    project: Project,
    *,
    limit: int | None = None,
    train_steps: int | None = None,
    sufficiency: bool = False,
    track: bool = True,
    serve: bool = True,
    queries: int = 3,
) -> PipelineResult:
    """Run every stage in order and write ``.tunewise/pipeline/<id>/report.{md,html}``.

    Args:
        project: the loaded spec.
        limit: evaluate on the first N dev examples only (every stage uses the same examples).
        train_steps: cap the fine-tune at this many optimizer steps (the spec's ``train`` section otherwise).
        sufficiency: run decide's data-sufficiency probe (several short trainings).
        track: log every stage to MLflow.
        serve: end by serving the fine-tune (the base model when there is none) and querying it.
        queries: held-out examples sent to the served model.
    """
    # every stage's output root is checked before the first stage runs
    for root in (
        "runs",
        "decisions",
        "datasets",
        "adapters",
        "pipeline",
        "monitor",
    ):  # every stage's, before the first runs
        check_output_root(project.state_dir / root)
    timings: dict[str, float] = {}

    def stage(name: str) -> float:
        console.print(Rule(f"[bold]{name}"))
        return time.perf_counter()

    began = stage("1/7 evaluate the baselines")
    baseline = evaluate(project, split="dev", limit=limit, track=track)
    print_summary(baseline, console)
    timings["evaluate"] = time.perf_counter() - began

    began = stage("2/7 decide")
    decision = decide(
        project, split="dev", spec=_probes_within(project, limit), track=track, sufficiency=sufficiency, limit=limit
    )
    console.print(f"[bold]{decision.recommendation}[/bold]: {decision.summary}")
    timings["decide"] = time.perf_counter() - began

    began = stage("3/7 curate a dataset version")
    dataset = prepare(project).version
    console.print(f"dataset version {dataset.hash[:16]} at {dataset.path}")
    timings["curate"] = time.perf_counter() - began

    training = comparison = None
    if any(ACTIONS[action].fine_tunes for action in (decision.recommendation, *decision.also)):
        began = stage("4/7 train a LoRA adapter")
        spec = project.spec.train
        if train_steps is not None:
            spec = spec.model_copy(update={"max_steps": train_steps})
        run_name = f"pipeline-{dt.datetime.now(dt.UTC):%Y%m%d-%H%M%S}"
        training = train(project, spec, dataset=dataset.hash, run_name=run_name, track=track)
        timings["train"] = time.perf_counter() - began

        began = stage("5/7 evaluate the fine-tune against the baselines")
        comparison = compare_with_baselines(project, training, split="dev", limit=limit, track=track)
        print_summary(comparison.summary, console)
        console.print(comparison.describe())
        timings["evaluate again"] = time.perf_counter() - began
    else:
        console.print(f"[bold]no training[/bold]: the decision is {ACTIONS[decision.recommendation].title!r}")

    champion = None
    if training is not None and comparison is not None and comparison.beat_baseline and track:
        moved = promote(project, adapter=training.adapter_dir.name, reason=f"quickstart: {comparison.describe()}")
        champion = moved.version
        console.print(f"promoted: {project.spec.champion} -> version {champion} ({training.adapter_dir.name})")

    served = monitored = None
    if serve:
        began = stage("6/7 serve the model and query it")
        model = project.spec.champion if champion is not None else None
        since = time.time()  # this run's requests only: the log keeps earlier runs' too
        served = serve_and_query(project, training, limit=limit, queries=queries, model=model)
        console.print(served.describe())
        timings["serve"] = time.perf_counter() - began

        began = stage("7/7 monitor the served traffic")
        monitored = monitor(project, model=served.model, since=since, track=track, progress=False)
        console.print(f"monitor: {monitored.verdict} ({monitored.n_window} requests of {served.model})")
        timings["monitor"] = time.perf_counter() - began

    result = PipelineResult(
        project=project.spec.name,
        baseline=baseline,
        decision=decision,
        dataset=dataset,
        training=training,
        comparison=comparison,
        served=served,
        champion=champion,
        monitored=monitored,
        timings_s=timings,
    )
    report_md, report_html = write_pipeline_report(project, result)
    return dataclasses.replace(result, report_md=report_md, report_html=report_html)


def serve_and_query(
    project: Project, training: TrainResult | None, *, limit: int | None, queries: int, model: str | None = None
) -> ServedQueries:
    """Serve the project (its ``serve`` section), send ``queries`` held-out examples to ``model`` (default: the
    fine-tune, else the base) with the official ``openai`` client, and stop the server. Held out: the test split when
    there is one, else dev examples after the first ``limit`` that the other stages scored."""
    split = "test" if project.spec.data.test else "dev"
    examples = load_examples(project, project.split_path(split))
    skip = limit if split == "dev" and limit is not None and limit + queries <= len(examples) else 0
    held_out = examples[skip : skip + queries]
    with start_server(project, port=0) as server:
        if model is None:
            model = training.adapter_dir.name if training is not None else base_model_name(project)
        log = server.state.log
        return query_served(project, server.base_url, model, held_out, log_path=log.path if log else None)


def _probes_within(project: Project, limit: int | None) -> DecideSpec:
    """The spec's ``decide`` section, its probes capped so that they stay within the examples every stage uses."""
    spec = project.spec.decide
    if limit is None:
        return spec
    cap = max(2, min(limit, spec.probes.max_examples))
    probes = spec.probes.model_copy(update={"max_examples": cap, "chunk": min(spec.probes.chunk, cap)})
    return spec.model_copy(update={"probes": probes})


def run_quickstart(project_dir: Path | None = None, **options: Any) -> PipelineResult:
    """The README's main job: :func:`run_pipeline` on the receipts example (or ``project_dir``)."""
    return run_pipeline(load_project(project_dir or default_example_dir()), **options)


def _stage_rows(project: Project, result: PipelineResult) -> list[tuple[str, str, str]]:
    """(stage, outcome, report path) for every stage that ran."""
    root = project.state_dir
    metric = result.baseline.primary_metric
    best = max(result.baseline.candidates, key=lambda c: c.metrics[metric].value)
    rows = [
        (
            "evaluate",
            f"best baseline {best.name}: {metric} {best.metrics[metric].value:.3f} "
            f"[{best.metrics[metric].ci_low:.3f}, {best.metrics[metric].ci_high:.3f}] "
            f"on {result.baseline.n_examples} dev examples",
            str(root / "runs" / result.baseline.run_id / "report.html"),
        )
    ]
    if result.decision is not None:
        rows.append(
            (
                "decide",
                f"{result.decision.recommendation}: {result.decision.summary}",
                str(root / "decisions" / result.decision.decision_id / "report.html"),
            )
        )
    if result.dataset is not None:
        counts = result.dataset.card().counts.to_dict()
        rows.append(("curate", f"version {result.dataset.hash[:16]} {counts}", str(result.dataset.path / "card.md")))
    if result.training is not None:
        t = result.training
        rows.append(
            (
                "train",
                f"adapter {t.adapter_dir.name}: best dev-subset {t.metric_name} {t.best_metric} at step {t.best_step}, "
                f"{t.train_tokens} tokens at {t.tokens_per_s:.0f} tok/s",
                str(t.adapter_dir),
            )
        )
    if result.comparison is not None:
        rows.append(
            ("evaluate again", result.comparison.describe(), str(result.training.run_dir / "eval-dev" / "report.html"))
        )
    if result.served is not None:
        rows.append(("serve", result.served.describe(), str(result.served.log_path or "")))
    if result.monitored is not None:
        m = result.monitored
        outcome = f"{m.verdict}: {m.n_window} requests of {m.model} against {m.n_reference} reference inputs"
        if m.verdict == "too_few":
            outcome += f" (a verdict needs monitor.min_examples = {project.spec.monitor.min_examples})"
        rows.append(("monitor", outcome, str(m.run_dir / "report.html")))
    return rows


def write_pipeline_report(project: Project, result: PipelineResult) -> tuple[Path, Path]:
    """A one-page summary of the run linking each stage's own report."""
    directory = project.state_dir / "pipeline" / f"{dt.datetime.now(dt.UTC):%Y%m%d-%H%M%S}"
    rows = [
        {
            "stage": stage,
            "seconds": result.timings_s.get(stage, 0),
            "outcome": outcome,
            "report": report,
            "report_name": Path(report).name,
        }
        for stage, outcome, report in _stage_rows(project, result)
    ]
    context = {"project": result.project, "rows": rows}
    mark_run_dir(directory, "pipeline")
    return write_report(directory, render_page("pipeline.md.j2", **context), render_page("pipeline.html", **context))
