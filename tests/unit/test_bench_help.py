"""Every bench script parses its arguments: ``--help`` prints its usage and exits 0."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = sorted((ROOT / "bench").glob("*.py"))


def test_there_are_bench_scripts() -> None:
    assert SCRIPTS, "the parametrized test below would pass vacuously"
    names = {script.name for script in SCRIPTS}
    assert {"serve_load.py", "gpu_serve.py", "gpu_train.py", "gpu_plan.py"} <= names  # the serve and GPU benchmarks


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_bench_script_help(script: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(script), "--help"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.startswith(f"usage: {script.name}") and "--help" in done.stdout
