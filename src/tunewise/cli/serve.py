"""``tunewise serve``: the OpenAI-compatible server for the project's base model and adapters (thin over serve)."""

from __future__ import annotations

from pathlib import Path

import typer

from tunewise.cli.common import err_console, handle_errors
from tunewise.cli.serve_keys import keys_app
from tunewise.config import load_project
from tunewise.config.overrides import with_overrides
from tunewise.serve import serve
from tunewise.serve.logging import configure_json_logging

app = typer.Typer(help="Serve the base model and every trained adapter over the OpenAI API.")
app.add_typer(keys_app, name="keys")


@app.callback(invoke_without_command=True)
def serve_command(
    ctx: typer.Context,
    config: Path = typer.Option(Path("tunewise.yaml"), "--config", "-c", help="The project spec (or its directory)."),
    engine: str | None = typer.Option(None, "--engine", help="llamacpp (CPU), vllm (GPU) or transformers."),
    host: str | None = typer.Option(None, "--host", help="Address to bind (default 127.0.0.1)."),
    port: int | None = typer.Option(None, "--port", help="Port (default 8000; 0 picks a free one)."),
    parallel: int | None = typer.Option(None, "--parallel", help="Requests decoded at once."),
    context_length: int | None = typer.Option(None, "--context-length", help="Tokens per request."),
    redact_pii: bool | None = typer.Option(
        None, "--redact-pii/--no-redact-pii", help="Redact PII before the request log stores anything."
    ),
    check: int = typer.Option(
        0,
        "--check",
        min=0,
        help="Serve an adapter only once its task metric through the server is within 1 point of the in-process "
        "evaluation on N dev examples (0: no check).",
    ),
) -> None:
    """Serve until Ctrl-C / SIGTERM (in-flight requests finish first). `tunewise serve keys` manages API keys."""
    if ctx.invoked_subcommand is not None:
        return
    with handle_errors():
        project = load_project(config)
        flags = {"engine": engine, "host": host, "port": port, "parallel": parallel, "context_length": context_length}
        spec = with_overrides(project.spec.serve, flags, field="serve")
        if redact_pii is not None:
            spec = spec.model_copy(update={"log": spec.log.model_copy(update={"redact_pii": redact_pii})})
        configure_json_logging()
        serve(project, spec, announce=lambda line: err_console.print(line, highlight=False), check_examples=check)
