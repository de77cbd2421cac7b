"""The main job: the whole pipeline that exists so far, on one project (by default the receipts example).

evaluate the baselines → decide → curate a dataset version → train (when the decision says so) → evaluate the
fine-tune against the baselines with a paired test → one report that links every stage's own report.
"""

from __future__ import annotations

import datetime as dt
import html
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.rule import Rule

from tunewise.errors import InputError
from tunewise.io.atomic import atomic_write_text
from tunewise.records import EvalSummary
from tunewise.spec import Project, load_project

console = Console(stderr=True)


@dataclass
class PipelineResult:
    """What the main job produced; every stage's records, and the pipeline report."""

    project: str
    baseline: EvalSummary
    decision: Any = None
    dataset: Any = None
    training: Any = None
    comparison: Any = None
    timings_s: dict[str, float] = field(default_factory=dict)
    report_md: Path | None = None
    report_html: Path | None = None


def default_example_dir() -> Path:
    """``examples/receipts`` of the repository this package was installed from, else of the working directory."""
    for base in (Path(__file__).resolve().parents[2], Path.cwd()):
        candidate = base / "examples" / "receipts"
        if (candidate / "tunewise.yaml").is_file():
            return candidate
    raise InputError("the receipts example was not found: run from the repository root or pass --project")


def run_pipeline(
    project: Project,
    *,
    limit: int | None = None,
    train_steps: int | None = None,
    sufficiency: bool = False,
    track: bool = True,
) -> PipelineResult:
    """Run every stage in order and write ``.tunewise/pipeline/<id>/report.{md,html}``.

    Args:
        project: the loaded spec.
        limit: evaluate on the first N dev examples only (every stage uses the same examples).
        train_steps: cap the fine-tune at this many optimizer steps (the spec's ``train`` section otherwise).
        sufficiency: run decide's data-sufficiency probe (several short trainings).
        track: log every stage to MLflow.
    """
    from tunewise.cli.eval import print_summary
    from tunewise.data import prepare
    from tunewise.decide import decide
    from tunewise.decide.tree import ACTIONS
    from tunewise.eval import evaluate
    from tunewise.train import train
    from tunewise.train.compare import compare_with_baselines

    timings: dict[str, float] = {}

    def stage(name: str) -> float:
        console.print(Rule(f"[bold]{name}"))
        return time.perf_counter()

    began = stage("1/5 evaluate the baselines")
    baseline = evaluate(project, split="dev", limit=limit, track=track)
    print_summary(baseline)
    timings["evaluate"] = time.perf_counter() - began
    result = PipelineResult(project.spec.name, baseline, timings_s=timings)

    began = stage("2/5 decide")
    decide_spec = project.spec.decide
    if limit is not None:
        # The probes stay within the examples every other stage uses.
        cap = max(2, min(limit, decide_spec.probes.max_examples))
        probes = decide_spec.probes.model_copy(update={"max_examples": cap, "chunk": min(decide_spec.probes.chunk, cap)})
        decide_spec = decide_spec.model_copy(update={"probes": probes})
    result.decision = decide(project, split="dev", spec=decide_spec, track=track, sufficiency=sufficiency, limit=limit)
    console.print(f"[bold]{result.decision.recommendation}[/bold]: {result.decision.summary}")
    timings["decide"] = time.perf_counter() - began

    began = stage("3/5 curate a dataset version")
    result.dataset = prepare(project).version
    console.print(f"dataset version {result.dataset.hash[:16]} at {result.dataset.path}")
    timings["curate"] = time.perf_counter() - began

    action = ACTIONS[result.decision.recommendation]
    if action.fine_tunes or any(ACTIONS[a].fine_tunes for a in result.decision.also):
        began = stage("4/5 train a LoRA adapter")
        spec = project.spec.train
        if train_steps is not None:
            spec = spec.model_copy(update={"max_steps": train_steps})
        run_name = f"pipeline-{dt.datetime.now(dt.UTC):%Y%m%d-%H%M%S}"
        result.training = train(project, spec, dataset=result.dataset.hash, run_name=run_name, track=track)
        timings["train"] = time.perf_counter() - began

        began = stage("5/5 evaluate the fine-tune against the baselines")
        result.comparison = compare_with_baselines(project, result.training, split="dev", limit=limit, track=track)
        print_summary(result.comparison.summary)
        console.print(result.comparison.describe())
        timings["evaluate again"] = time.perf_counter() - began
    else:
        console.print(f"[bold]no training[/bold]: the decision is {action.title!r}")

    result.report_md, result.report_html = write_pipeline_report(project, result)
    return result


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
            f"[{best.metrics[metric].ci_low:.3f}, {best.metrics[metric].ci_high:.3f}] on {result.baseline.n_examples} dev examples",
            str(root / "runs" / result.baseline.run_id / "report.html"),
        )
    ]
    if result.decision is not None:
        rows.append(("decide", f"{result.decision.recommendation}: {result.decision.summary}", str(root / "decisions" / result.decision.decision_id / "report.html")))
    if result.dataset is not None:
        counts = result.dataset.card().get("counts", {})
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
        rows.append(("evaluate again", result.comparison.describe(), str(result.training.run_dir / "eval-dev" / "report.html")))
    return rows


def write_pipeline_report(project: Project, result: PipelineResult) -> tuple[Path, Path]:
    """A one-page summary of the run linking each stage's own report."""
    directory = project.state_dir / "pipeline" / f"{dt.datetime.now(dt.UTC):%Y%m%d-%H%M%S}"
    rows = _stage_rows(project, result)
    md = [f"# tunewise pipeline — {result.project}", "", "| stage | time | outcome | report |", "|---|---|---|---|"]
    md += [f"| {s} | {result.timings_s.get(s, 0):.0f} s | {o.replace('|', '/')} | `{r}` |" for s, o, r in rows]
    e = html.escape
    body = "".join(
        f"<tr><td>{e(s)}</td><td>{result.timings_s.get(s, 0):.0f} s</td><td>{e(o)}</td><td><a href='file://{e(r)}'>{e(Path(r).name)}</a></td></tr>"
        for s, o, r in rows
    )
    page = (
        "<!doctype html><html><head><meta charset='utf-8'><title>tunewise pipeline</title><style>"
        "body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto}td,th{border:1px solid #ccc;padding:4px 8px}"
        "table{border-collapse:collapse}</style></head><body>"
        f"<h1>tunewise pipeline — {e(result.project)}</h1><table><tr><th>stage</th><th>time</th><th>outcome</th><th>report</th></tr>"
        f"{body}</table></body></html>"
    )
    atomic_write_text(directory / "report.md", "\n".join(md) + "\n")
    atomic_write_text(directory / "report.html", page)
    return directory / "report.md", directory / "report.html"
