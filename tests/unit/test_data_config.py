"""CurationSpec validation, and the spec's future ``curation:`` section taking effect in prepare."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from tunewise.config import CurationSpec, Project, ProjectSpec
from tunewise.data.build import prepare
from tunewise.data.versions import list_versions
from tunewise.errors import InputError


def test_defaults_and_validation() -> None:
    spec = CurationSpec()
    assert spec.pii_mode == "mask" and spec.effective_leakage_threshold == spec.near_dup_threshold
    assert CurationSpec(leakage_threshold=0.5).effective_leakage_threshold == 0.5
    with pytest.raises(ValidationError, match="extra"):
        CurationSpec(near_dup=0.5)  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match="sum"):
        CurationSpec(split_ratios=(0.5, 0.2, 0.2))
    with pytest.raises(ValidationError):
        CurationSpec(pii_mode="shred")  # type: ignore[arg-type]


class SpecWithCuration(ProjectSpec):
    curation: CurationSpec = CurationSpec()


def test_prepare_reads_the_spec_curation_section(tmp_path: Path) -> None:
    def text(i: int) -> str:
        return (
            f"mail person{i}@example.com about order {i} today"
            if i % 4 == 0
            else f"a question number {i} about my order"
        )

    rows = [{"id": str(i), "text": text(i), "label": "a" if i % 2 else "b"} for i in range(20)]
    (tmp_path / "t.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    raw = {
        "name": "c",
        "task": {"kind": "classify", "labels": ["a", "b"]},
        "data": {"train": "t.jsonl", "target_field": "label"},
        "curation": {"pii_mode": "drop_row"},
    }
    project = Project(SpecWithCuration.model_validate(raw), tmp_path)
    with pytest.raises(InputError, match="no dataset versions"):
        from tunewise.data.versions import load_version

        load_version(project)
    version = prepare(project).version
    card = version.card()
    assert card.pii.mode == "drop_row" and card.pii.dropped == ["0", "4", "8", "12", "16"]
    assert card.counts.rows_written == 15 and card.splitting.stratified
    (tmp_path / "t.jsonl").write_text("".join(json.dumps({**r, "text": text(0) + r["id"]}) + "\n" for r in rows))
    with pytest.raises(InputError, match="no training rows left"):
        prepare(project)
    assert [v.hash for v in list_versions(project)] == [version.hash]
    with pytest.raises(InputError, match="unknown PII type"):
        prepare(project, CurationSpec(pii_types=["dna"]))
