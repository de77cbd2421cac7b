"""``tunewise logs export``: the serve request log as chat JSONL for ``tunewise data prepare`` (thin over serve)."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from tunewise.cli.common import console, handle_errors
from tunewise.config import load_project
from tunewise.serve.logs_export import export_logs, parse_time
from tunewise.serve.requestlog import default_log_path

app = typer.Typer(help="The requests `tunewise serve` logged: export them as training data.", no_args_is_help=True)

CONFIG = typer.Option(Path("tunewise.yaml"), "--config", "-c", help="The project spec (or its directory).")


@app.callback()
def logs() -> None:
    """The requests `tunewise serve` logged."""  # a callback keeps `export` a subcommand while it is the only one


@app.command("export")
def export_command(
    config: Path = CONFIG,
    since: str | None = typer.Option(None, "--since", help="From this time: 2025-01-31, 2025-01-31T14:00Z, or 7d ago."),
    until: str | None = typer.Option(None, "--until", help="Before this time (same forms as --since)."),
    model: str | None = typer.Option(None, "--model", "-m", help="Only requests for this served model name."),
    out: Path | None = typer.Option(None, "--out", "-o", help="JSONL to write (default served-<UTC time>.jsonl)."),
    all_rows: bool = typer.Option(
        False, "--all", help="Keep outputs known to be bad too (invalid JSON or schema, truncated)."
    ),
    log: Path | None = typer.Option(None, "--log", help="The request log (default .tunewise/serve/requests.db)."),
) -> None:
    """Write logged requests as chat examples, the served output as the assistant's answer."""

    with handle_errors():
        log_path = log or default_log_path(load_project(config).state_dir)
        start = parse_time(since, flag="--since") if since else None
        end = parse_time(until, flag="--until") if until else None
        target = out or Path(time.strftime("served-%Y%m%d-%H%M%S.jsonl", time.gmtime()))
        result = export_logs(log_path, target, since=start, until=end, model=model, only_valid=not all_rows)
    reasons = ", ".join(f"{reason.replace('_', ' ')} {n}" for reason, n in result.skipped.items())
    skipped = f"; skipped {result.skipped_total} ({reasons})" if result.skipped else ""
    examples = "example" if result.written == 1 else "examples"
    console.print(f"wrote {result.written} {examples} to {result.path}{skipped}", highlight=False, soft_wrap=True)
