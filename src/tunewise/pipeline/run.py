"""Every stage in order on one project; the stage headers say how long the rest will take."""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
from pathlib import Path

from rich.console import Console
from rich.rule import Rule

from tunewise import egress
from tunewise.config import DecideSpec, Project
from tunewise.data import prepare
from tunewise.decide import ACTIONS, decide
from tunewise.errors import InputError
from tunewise.eval import evaluate
from tunewise.examples import load_examples
from tunewise.io.outputs import check_output_root
from tunewise.monitor import monitor
from tunewise.pipeline.budget import TrainBudget, budget_train_spec, prompt_baselines
from tunewise.pipeline.eta import clock, load_previous_timings, remaining_s
from tunewise.pipeline.record import PipelineResult
from tunewise.pipeline.summary import answer_sentence, budget_key, write_pipeline_report
from tunewise.refresh import promote
from tunewise.report.console import print_summary
from tunewise.serve import start_server
from tunewise.serve.catalog import base_model_name
from tunewise.serve.query import ServedQueries, query_served
from tunewise.train import TrainResult, compare_with_baselines, train

console = Console(stderr=True)


def default_example_dir() -> Path:
    """``examples/receipts`` of the repository this package was installed from, else of the working directory."""
    for base in (Path(__file__).resolve().parents[3], Path.cwd()):
        candidate = base / "examples" / "receipts"
        if (candidate / "tunewise.yaml").is_file():
            return candidate
    raise InputError("the receipts example was not found: run from the repository root or pass --project")


_TITLES = {
    "evaluate": "evaluate the baselines",
    "decide": "decide",
    "curate": "curate a dataset version",
    "train": "train a LoRA adapter",
    "evaluate again": "evaluate the fine-tune against the baselines",
    "serve": "serve the model and query it",
    "monitor": "monitor the served traffic",
}
STAGES = tuple(_TITLES)


@egress.guarded
def run_pipeline(
    project: Project,
    *,
    limit: int | None = None,
    train_steps: int | None = None,
    budget: TrainBudget | None = None,
    sufficiency: bool = False,
    track: bool = True,
    serve: bool = True,
    queries: int = 3,
) -> PipelineResult:
    """Run every stage in order and write ``.tunewise/pipeline/<id>/report.{md,html}``.

    Args:
        project: the loaded spec.
        limit: evaluate on the first N dev examples only (every stage uses the same examples).
        train_steps: cap the fine-tune at this many optimizer steps.
        budget: train on a subset for a number of epochs and evaluate on ``budget.dev_examples`` (unless ``limit``);
            ``None``: the spec's ``train:`` section on every dev example.
        sufficiency: run decide's data-sufficiency probe (several short trainings).
        track: log every stage to MLflow.
        serve: end by serving the fine-tune (the base model when there is none) and querying it.
        queries: held-out examples sent to the served model.
    """
    # every stage's output root is checked before the first stage runs
    for root in ("runs", "decisions", "datasets", "adapters", "pipeline", "monitor"):
        check_output_root(project.state_dir / root)
    if limit is None and budget is not None:
        limit = budget.dev_examples
    baselines = prompt_baselines(project)
    previous = load_previous_timings(project.state_dir / "pipeline", budget_key(budget))
    timings: dict[str, float] = {}
    started = time.perf_counter()
    planned = [s for s in STAGES if serve or s not in ("serve", "monitor")]

    def stage(name: str) -> float:
        left = remaining_s(previous, planned[planned.index(name) :])
        eta = f" · about {clock(left)} left (the last run's stage times)" if left is not None else ""
        number = f"{planned.index(name) + 1}/{len(planned)}"
        console.print(
            Rule(f"[bold]{number} {_TITLES[name]}[/bold] · {clock(time.perf_counter() - started)} so far{eta}")
        )
        return time.perf_counter()

    began = stage("evaluate")
    baseline = evaluate(project, split="dev", limit=limit, candidates=baselines, track=track)
    print_summary(baseline, console)
    timings["evaluate"] = time.perf_counter() - began

    began = stage("decide")
    decision = decide(
        project, split="dev", spec=_probes_within(project, limit), track=track, sufficiency=sufficiency, limit=limit
    )
    console.print(f"[bold]{decision.recommendation}[/bold]: {decision.summary}")
    timings["decide"] = time.perf_counter() - began

    began = stage("curate")
    dataset = prepare(project).version
    console.print(f"dataset version {dataset.hash[:16]} at {dataset.path}")
    timings["curate"] = time.perf_counter() - began

    training = comparison = None
    if any(ACTIONS[action].fine_tunes for action in (decision.recommendation, *decision.also)):
        began = stage("train")
        spec = budget_train_spec(project.spec.train, budget, train_steps)
        subset = budget.train_examples if budget is not None else None
        if budget is not None:
            console.print(budget.describe())
        run_name = f"pipeline-{dt.datetime.now(dt.UTC):%Y%m%d-%H%M%S}"
        training = train(project, spec, dataset=dataset.hash, subset=subset, run_name=run_name, track=track)
        timings["train"] = time.perf_counter() - began

        began = stage("evaluate again")
        comparison = compare_with_baselines(
            project, training, split="dev", limit=limit, track=track, baselines=baselines
        )
        print_summary(comparison.summary, console)
        console.print(comparison.describe())
        timings["evaluate again"] = time.perf_counter() - began
    else:
        console.print(f"[bold]no training[/bold]: the decision is {ACTIONS[decision.recommendation].title!r}")

    champion = None
    if training is not None and comparison is not None and comparison.beat_baseline and track:
        moved = promote(project, adapter=training.adapter_dir.name, reason=f"quickstart: {comparison.describe()}")
        champion = moved.to_version
        console.print(f"promoted: {project.spec.champion} -> version {champion} ({training.adapter_dir.name})")

    served = monitored = None
    if serve:
        began = stage("serve")
        model = project.spec.champion if champion is not None else None
        since = time.time()  # this run's requests only: the log keeps earlier runs' too
        served = serve_and_query(project, training, limit=limit, queries=queries, model=model)
        console.print(served.describe())
        timings["serve"] = time.perf_counter() - began

        began = stage("monitor")
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
        budget=budget,
    )
    report_md, report_html = write_pipeline_report(project, result)
    console.print(f"\n[bold]{answer_sentence(result)}[/bold]")
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
