"""``tunewise decide``: walk the fine-tuning decision tree with measurements and print the recommendation."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from tunewise.cli.common import console, handle_errors
from tunewise.config import load_project
from tunewise.config.overrides import with_overrides
from tunewise.decide import ACTIONS, TREE, Decision, decide


def decide_command(
    config: Path = typer.Option(Path("tunewise.yaml"), "--config", "-c", help="The project spec (or its directory)."),
    split: str = typer.Option("dev", help="The split the probes evaluate on."),
    chunk: int | None = typer.Option(None, min=2, help="Examples added per probe round (decide.probes.chunk)."),
    max_examples: int | None = typer.Option(None, min=2, help="Cap per probe (decide.probes.max_examples)."),
    ci_half_width: float | None = typer.Option(
        None, min=0.001, max=0.5, help="Stop a probe once its CIs are this tight."
    ),
    sufficiency: bool | None = typer.Option(
        None, "--sufficiency/--no-sufficiency", help="Force the data-sufficiency probe on/off."
    ),
    out: Path | None = typer.Option(None, "--out", help="Decision directory (default .tunewise/decisions/<id>)."),
    no_track: bool = typer.Option(False, "--no-track", help="Do not log to MLflow."),
) -> None:
    """Probe prompts, RAG, constrained decoding, budgets and data sufficiency; recommend a path with its evidence.

    Exits 2 when undecided: a failed probe left a node the answer depends on unmeasured.
    """
    with handle_errors():
        project = load_project(config)
        spec = project.spec.decide
        flags = {"chunk": chunk, "max_examples": max_examples, "ci_half_width": ci_half_width}
        spec = spec.model_copy(update={"probes": with_overrides(spec.probes, flags, field="decide.probes")})
        decision = decide(project, split=split, spec=spec, out=out, track=not no_track, sufficiency=sufficiency)
        print_decision(decision)
        where = out or project.state_dir / "decisions" / decision.decision_id
        console.print(f"report: [bold]{where / 'report.html'}[/bold]")
    if decision.recommendation == "undecided":  # a script must not read "no answer" as an answer
        raise typer.Exit(2)


def print_decision(decision: Decision) -> None:
    """The answer at every node, then the recommendation, runner-up and next command."""
    table = Table(title=f"decide: {decision.project}")
    for column in ("node", "answer", "why"):
        table.add_column(column, overflow="fold")
    colors = {"yes": "green", "no": "dim", "unknown": "yellow"}
    for node, answer in zip(TREE, decision.answers, strict=True):
        marker = "→ " if node.id in decision.path else "  "
        table.add_row(marker + node.id, f"[{colors[answer.answer]}]{answer.answer}[/]", answer.reason)
    console.print(table)
    for probe in decision.probes:
        status = probe.error or probe.stopped
        console.print(
            f"  probe [bold]{probe.name}[/bold]: n={probe.n}, {probe.seconds:.1f}s, {status}", highlight=False
        )
    flag = " [yellow](provisional)[/yellow]" if decision.provisional else ""
    console.print(f"\n[bold]{ACTIONS[decision.recommendation].title}[/bold]{flag}")
    console.print(decision.summary, highlight=False)
    console.print(f"runner-up: {decision.runner_up} — {decision.runner_up_reason}", highlight=False)
    console.print(f"next: [bold]{decision.next_command}[/bold]", highlight=False)
