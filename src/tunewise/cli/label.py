"""``tunewise label``: queue drifted production inputs, label them on a local page, measure agreement, import the
labels as a dataset version (thin over :mod:`tunewise.label`)."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from tunewise.cli.common import console, handle_errors
from tunewise.config import load_project
from tunewise.label import build_queue, import_labels, label_agreement, serve_labels
from tunewise.label.queue import label_root
from tunewise.label.record import LabelQueue
from tunewise.label.version import IMPORT_FILE
from tunewise.serve.logs_export import parse_time

app = typer.Typer(
    help="Label production inputs: a queue of the informative and diverse ones, a local page, a dataset version.",
    no_args_is_help=True,
)

CONFIG = typer.Option(Path("tunewise.yaml"), "--config", "-c", help="The project spec (or its directory).")
QUEUE = typer.Option(None, "--queue", "-q", help="A queue id or prefix (default: the latest queue).")


@app.command("queue")
def queue_command(
    config: Path = CONFIG,
    since: str | None = typer.Option(None, "--since", help="From this time: 2025-01-31, 2025-01-31T14:00Z, or 7d ago."),
    until: str | None = typer.Option(None, "--until", help="Before this time (same forms as --since)."),
    traffic: Path | None = typer.Option(
        None, "--traffic", help="A request log (.db) or a JSONL of inputs (default: monitor.traffic, else the log)."
    ),
    model: str | None = typer.Option(None, "--model", "-m", help="The served name (default: monitor.model)."),
    size: int | None = typer.Option(None, "--size", min=1, help="Items to queue (default: label.queue_size)."),
) -> None:
    """Choose the window's inputs worth a label (informative and diverse) and write the labelling queue."""
    with handle_errors():
        project = load_project(config)
        spec = project.spec.label if size is None else project.spec.label.model_copy(update={"queue_size": size})
        queue = build_queue(
            project,
            since=parse_time(since, flag="--since") if since else None,
            until=parse_time(until, flag="--until") if until else None,
            source=traffic,
            model=model,
            spec=spec,
        )
    _print_queue(queue)


def _print_queue(queue: LabelQueue) -> None:
    table = Table(title=f"queue {queue.id}: {len(queue.items)} of {queue.window_rows} inputs", title_justify="left")
    for column in ("#", "id", "score", "novelty", "why"):
        table.add_column(column, justify="right" if column in ("#", "score", "novelty") else "left")
    for rank, item in enumerate(queue.items, start=1):
        marker = "*" if item.overlap else ""
        table.add_row(f"{rank}{marker}", item.id, f"{item.score:.2f}", f"{item.novelty:.2f}", "; ".join(item.reasons))
    console.print(table)
    counts = ", ".join(f"{reason} {n}" for reason, n in queue.reasons.items())
    console.print(f"reasons: {counts}", highlight=False)
    if queue.overlap:
        console.print(f"* shown to every labeller ({queue.overlap}), for agreement", highlight=False)
    console.print(f"written: [bold]{queue.path}[/bold]; next: tunewise label serve")


@app.command("serve")
def serve_command(
    config: Path = CONFIG,
    queue: str | None = QUEUE,
    host: str | None = typer.Option(None, "--host", help="Loopback address (default: label.host)."),
    port: int | None = typer.Option(None, "--port", min=0, max=65535, help="Port (default: label.port; 0: free)."),
) -> None:
    """Serve the labelling page for a queue until Ctrl+C; every answer is saved as it is given."""

    def announce(url: str, loaded: LabelQueue) -> None:
        console.print(
            f"labelling queue {loaded.id} ({len(loaded.items)} items): [bold]{url}?labeller=YOUR_NAME[/bold]\n"
            "Ctrl+C stops the page; nothing answered is lost.",
            highlight=False,
        )

    with handle_errors():
        serve_labels(load_project(config), queue, host=host, port=port, announce=announce)


@app.command("agreement")
def agreement_command(
    config: Path = CONFIG,
    queue: str | None = QUEUE,
    as_json: bool = typer.Option(False, "--json", help="Print the agreement as JSON."),
) -> None:
    """Agreement between labellers on the items two or more of them labelled (kappa, alpha; per field)."""
    with handle_errors():
        result = label_agreement(load_project(config), queue)
    if as_json:
        console.print_json(json.dumps(result.to_dict()))
        return
    agreement = result.agreement
    table = Table(
        title=f"queue {result.queue}: {result.items} items labelled by {', '.join(agreement.annotators)}",
        title_justify="left",
    )
    for column in ("field", "items", "Cohen's kappa", "Krippendorff's alpha"):
        table.add_column(column, justify="left" if column == "field" else "right")
    for name, field in agreement.per_field.items():
        kappa = "–" if field.cohen_kappa is None else f"{field.cohen_kappa:.3f}"
        alpha = "–" if field.krippendorff_alpha is None else f"{field.krippendorff_alpha:.3f}"
        table.add_row(name, str(field.items), kappa, alpha)
    console.print(table)
    console.print(f"disputed (item, field) pairs: {agreement.disagreements}", highlight=False)


@app.command("import")
def import_command(config: Path = CONFIG, queue: str | None = QUEUE) -> None:
    """Import a queue's accepted and corrected items as a new dataset version, diffed against the previous one."""
    with handle_errors():
        project = load_project(config)
        result = import_labels(project, queue)
    state = "written" if result.created else "already there (same labels, same hash)"
    console.print(f"dataset version [bold]{result.version}[/bold] ({result.rows} labelled rows): {state}")
    if result.diff is None:
        console.print("no earlier dataset version to diff against")
        return
    console.print(f"against {result.previous[:12] if result.previous else '-'}:", highlight=False)
    for split, change in result.diff["splits"].items():
        rows = change["rows"]
        console.print(
            f"  {split}: {rows['from']} -> {rows['to']} rows; +{len(change['added'])} added, "
            f"-{len(change['removed'])} removed, {len(change['changed'])} changed",
            highlight=False,
        )
    console.print(f"diff stored in {label_root(project) / result.queue / IMPORT_FILE}", highlight=False)
