"""``tunewise eval`` and ``tunewise report``."""

from __future__ import annotations

from pathlib import Path

import typer

from tunewise.cli.common import console, handle_errors
from tunewise.records import EvalSummary


def eval_command(
    config: Path = typer.Option(Path("tunewise.yaml"), "--config", "-c", help="The project spec (or its directory)."),
    split: str = typer.Option("dev", help="Which data split of the spec to evaluate."),
    data: Path | None = typer.Option(None, "--data", help="Any data file of the same shape, instead of the split."),
    limit: int | None = typer.Option(None, "--limit", min=1, help="Only the first N examples."),
    out: Path | None = typer.Option(None, "--out", help="Run directory (default .tunewise/runs/<run-id>)."),
    candidate: list[str] = typer.Option([], "--candidate", help="Only these candidates (repeatable)."),
    no_track: bool = typer.Option(False, "--no-track", help="Do not log to MLflow."),
) -> None:
    """Run every candidate on a split: predictions, metrics with CIs, paired tests, report."""
    from tunewise.eval import evaluate
    from tunewise.spec import load_project

    with handle_errors():
        project = load_project(config)
        chosen = None
        if candidate:
            known = {c.name: c for c in project.spec.candidates}
            unknown = [name for name in candidate if name not in known]
            if unknown:
                from tunewise.errors import InputError

                raise InputError(f"unknown candidate(s) {', '.join(unknown)} (known: {', '.join(known)})", field="--candidate")
            chosen = [known[name] for name in candidate]
        summary = evaluate(project, split=split, data_path=data, limit=limit, out=out, candidates=chosen, track=not no_track)
        print_summary(summary)
        run_dir = out or project.state_dir / "runs" / summary.run_id
        console.print(f"report: [bold]{run_dir / 'report.html'}[/bold]")


def report_command(run_dir: Path = typer.Argument(..., help="A run directory written by `tunewise eval`.")) -> None:
    """Render (again) the Markdown and HTML report of a run directory."""
    from tunewise.report import render_report

    with handle_errors():
        if not (run_dir / "summary.json").is_file():
            from tunewise.errors import InputError

            raise InputError("not a run directory (no summary.json)", file=run_dir)
        md, html = render_report(run_dir)
        console.print(f"wrote {md}\nwrote {html}")


def print_summary(summary: EvalSummary) -> None:
    """A compact table: the primary metric with its CI, the other metrics' values, latency and cost."""
    from rich.table import Table

    primary = summary.primary_metric
    others = [n for n in dict.fromkeys(n for c in summary.candidates for n in c.metrics) if n != primary]
    table = Table(title=f"{summary.split}: {summary.n_examples} examples")
    for column in ["candidate", f"{primary} [95% CI]", *others, "p95 ms", "$/1M tok"]:
        table.add_column(column, overflow="fold")
    for c in summary.candidates:
        main = c.metrics.get(primary)
        cells = [f"{main.value:.3f} [{main.ci_low:.3f}, {main.ci_high:.3f}]" if main else "—"]
        cells += [f"{c.metrics[n].value:.3f}" if n in c.metrics else "—" for n in others]
        ops = c.operational
        table.add_row(c.name, *cells, f"{ops.get('latency_p95_ms', float('nan')):.0f}", f"{ops.get('usd_per_1m_tokens', float('nan')):.3f}")
    console.print(table)
    for p in summary.comparisons:
        if p.metric == primary:
            console.print(f"{p.b} vs {p.a}: {p.metric} {p.diff:+.3f} [{p.ci_low:+.3f}, {p.ci_high:+.3f}], p = {p.p_value:.4f} ({p.test})")
