"""``tunewise quickstart``: the main job on the receipts example, at a small budget by default."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tunewise.config import load_project
from tunewise.pipeline.budget import quickstart_budget
from tunewise.pipeline.record import PipelineResult
from tunewise.pipeline.run import default_example_dir, run_pipeline


def run_quickstart(project_dir: Path | None = None, *, full: bool = False, **options: Any) -> PipelineResult:
    """:func:`run_pipeline` on the receipts example (or ``project_dir``): with the spec's ``quickstart:`` budget, or
    with ``full`` its own ``train:`` section on every dev example (the README's headline run)."""
    project = load_project(project_dir or default_example_dir())
    return run_pipeline(project, budget=None if full else quickstart_budget(project), **options)
