"""What every command shares: the console, and turning tunewise errors into one clear line and a non-zero exit."""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator

import typer
from rich.console import Console

from tunewise.errors import TunewiseError

console = Console()
err_console = Console(stderr=True)


def quiet_libraries() -> None:
    """Offline by default and without the progress bars of transformers' weight loading."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    # peft still calls this transformers 5 deprecation on every PEFT model: noise for a CLI user.
    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)


@contextlib.contextmanager
def handle_errors() -> Iterator[None]:
    """Print a :class:`TunewiseError` as ``error: file:line: field: problem`` and exit with status 1."""
    try:
        yield
    except TunewiseError as exc:
        err_console.print(f"[bold red]error:[/bold red] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
