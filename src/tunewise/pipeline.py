"""The main job: the whole pipeline that exists so far, run on one project (by default the receipts example)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tunewise.errors import InputError
from tunewise.records import EvalSummary
from tunewise.spec import load_project


@dataclass(frozen=True)
class QuickstartResult:
    baseline: EvalSummary
    run_dir: Path
    report_html: Path


def default_example_dir() -> Path:
    """``examples/receipts`` of the repository this package was installed from, else of the working directory."""
    for base in (Path(__file__).resolve().parents[2], Path.cwd()):
        candidate = base / "examples" / "receipts"
        if (candidate / "tunewise.yaml").is_file():
            return candidate
    raise InputError("the receipts example was not found: run from the repository root or pass --project")


def run_quickstart(project_dir: Path | None = None, *, limit: int | None = None) -> QuickstartResult:
    """Evaluate the example's candidates on its dev split and render the report."""
    from tunewise.cli.eval import print_summary
    from tunewise.eval import evaluate

    project = load_project(project_dir or default_example_dir())
    summary = evaluate(project, split="dev", limit=limit)
    print_summary(summary)
    run_dir = project.state_dir / "runs" / summary.run_id
    return QuickstartResult(summary, run_dir, run_dir / "report.html")
