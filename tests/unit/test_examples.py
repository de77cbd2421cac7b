"""Every YAML under examples/ is a project spec the public loader accepts, naming data files that exist."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tunewise.config import load_project

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
# Hidden folders (an example's own .tunewise/ once it has been run) hold outputs, not specs.
SPECS = sorted(
    p for p in EXAMPLES.glob("**/*.yaml") if not any(part.startswith(".") for part in p.relative_to(EXAMPLES).parts)
)


def test_every_example_has_a_spec() -> None:
    """A folder is a project (its ``tunewise.yaml``) or builds projects from the shared data (``make_cases.py``)."""
    folders = sorted(p for p in EXAMPLES.iterdir() if p.is_dir() and not p.name.startswith((".", "__")))
    assert folders
    assert [f for f in folders if not (f / "tunewise.yaml").is_file() and not (f / "make_cases.py").is_file()] == []


def test_built_cases_are_specs_with_their_data(shared_data: Path, tmp_path: Path) -> None:
    script = EXAMPLES / "drift" / "make_cases.py"
    subprocess.run([sys.executable, str(script), str(tmp_path), "--data", str(shared_data)], check=True)
    built = sorted(tmp_path.glob("*/tunewise.yaml"))
    assert [p.parent.name for p in built] == ["banking-intents", "receipts-stores"]
    for spec_file in built:
        project = load_project(spec_file)
        assert project.split_path("train").is_file() and project.split_path("dev").is_file()
        for traffic in ("production.jsonl", "control.jsonl"):
            assert (spec_file.parent / traffic).stat().st_size > 0
    assert len(load_project(tmp_path / "banking-intents").labels or []) == 20


@pytest.mark.parametrize("spec_file", SPECS, ids=lambda p: str(p.relative_to(EXAMPLES)))
def test_example_spec_loads_and_its_data_exists(spec_file: Path, request: pytest.FixtureRequest) -> None:
    if "shared/data" in spec_file.read_text(encoding="utf-8"):
        request.getfixturevalue("shared_data")  # skips where ../shared/data is absent
    project = load_project(spec_file)
    assert project.spec_file == spec_file.resolve() and project.spec.candidates
    splits = [s for s in ("train", "dev", "test") if getattr(project.spec.data, s) is not None]
    assert "dev" in splits
    named = [project.split_path(s) for s in splits]
    if project.spec.data.documents is not None:
        named.append(project.path(project.spec.data.documents))
    assert [p for p in named if not p.is_file()] == []
