"""``tunewise data`` end to end on small fixtures and on the real receipts (shared data)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from tunewise.cli.main import app
from tunewise.data.versions import list_versions, load_version

runner = CliRunner(env={"COLUMNS": "240"})
SCHEMA = {
    "type": "object",
    "properties": {k: {"type": "string"} for k in ("company", "date", "address", "total")},
    "required": ["company", "date", "address", "total"],
    "additionalProperties": False,
}


def receipts_project(tmp_path: Path, shared_data: Path) -> Path:
    for split in ("train", "dev"):
        shutil.copy(shared_data / "sroie" / f"{split}.jsonl", tmp_path / f"{split}.jsonl")
    spec = {
        "name": "receipts",
        "task": {"kind": "extract", "instructions": "Extract the fields as JSON.", "output_schema": SCHEMA},
        "data": {"train": "train.jsonl", "dev": "dev.jsonl", "input_field": "text", "target_field": "fields"},
    }
    (tmp_path / "tunewise.yaml").write_text(yaml.safe_dump(spec))
    return tmp_path / "tunewise.yaml"


def test_prepare_receipts_twice_same_hash_and_card(tmp_path: Path, shared_data: Path) -> None:
    config = receipts_project(tmp_path, shared_data)
    first = runner.invoke(app, ["data", "prepare", "-c", str(config)])
    assert first.exit_code == 0, first.output
    second = runner.invoke(app, ["data", "prepare", "-c", str(config)])
    assert second.exit_code == 0 and "unchanged" in second.output
    versions = list_versions(tmp_path)
    assert len(versions) == 1 and versions[0].hash in first.output and versions[0].hash in second.output
    card = versions[0].card()
    assert any(d.kind == "near" for d in card.duplicates) and any(d.kind == "exact" for d in card.duplicates)
    assert card.leakage.leaks, "the receipts repeat chain stores across splits"
    assert card.grounding is not None
    assert card.grounding.per_field["address"].ungrounded > 50  # README: ~22% of addresses not verbatim
    assert card.grounding.per_field["company"].ungrounded >= 5
    assert card.pii.counts["phone"] > 100 and card.pii.counts["email"] > 10
    md = versions[0].card_markdown()
    for heading in ("## Duplicates", "## Leakage between splits", "## PII", "## Grounding"):
        assert heading in md

    grouped = runner.invoke(
        app,
        ["data", "prepare", "-c", str(config), "--group", "target.company", "--split", "resplit", "--leakage", "drop"],
    )
    assert grouped.exit_code == 0, grouped.output
    newest = load_version(tmp_path, "latest")
    assert newest.card().splitting.groups_across_splits == {} and set(newest.splits) == {"train", "dev", "test"}
    for command in (
        ["list"],
        ["show", versions[0].hash[:10]],
        ["show", "--json"],
        ["diff", versions[0].hash[:10], "latest"],
    ):
        result = runner.invoke(app, ["data", *command, "-c", str(config)])
        assert result.exit_code == 0, (command, result.output)
    diff = json.loads(
        runner.invoke(app, ["data", "diff", versions[0].hash[:10], "latest", "-c", str(config), "--json"]).output
    )
    assert diff["splits"]["test"]["added"] and diff["splits"]["dev"]["removed"]


def test_check_exit_codes_and_messages(tmp_path: Path, shared_data: Path) -> None:
    config = receipts_project(tmp_path, shared_data)
    ok = runner.invoke(app, ["data", "check", "-c", str(config), "--no-tokens"])
    assert ok.exit_code == 0, ok.output
    assert "duplicated input" in ok.output  # a warning, not a failure
    strict = runner.invoke(app, ["data", "check", "-c", str(config), "--no-tokens", "--strict"])
    assert strict.exit_code == 1
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "1", "text": "x"}\nnot json\n')
    result = runner.invoke(app, ["data", "check", str(bad), "-c", str(config), "--no-tokens"])
    assert result.exit_code == 1
    assert f"{bad}:1: fields: missing target" in result.output and f"{bad}:2: malformed JSON" in result.output


def test_prepare_refuses_bad_input(tmp_path: Path, shared_data: Path) -> None:
    config = receipts_project(tmp_path, shared_data)
    with open(tmp_path / "dev.jsonl", "a", encoding="utf-8") as handle:
        handle.write('{"id": "broken", "text": "x", "fields": {"company": 1}}\n')
    result = runner.invoke(app, ["data", "prepare", "-c", str(config)])
    assert result.exit_code == 1
    assert "dev.jsonl:101: fields: schema violation" in result.output
    assert list_versions(tmp_path) == []


def test_prepare_rejects_bad_option(tmp_path: Path, shared_data: Path) -> None:
    config = receipts_project(tmp_path, shared_data)
    result = runner.invoke(app, ["data", "prepare", "-c", str(config), "--pii", "shred"])
    assert result.exit_code == 1 and "curation.pii_mode" in result.output


@pytest.mark.integration
def test_check_with_the_embedded_tokenizer(tmp_path: Path, shared_data: Path) -> None:
    config = receipts_project(tmp_path, shared_data)
    result = runner.invoke(app, ["data", "check", "-c", str(config), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["context_window"] == 8192
    lengths = report["files"][0]["token_lengths"]
    assert 200 < lengths["mean"] < 1500 and lengths["over_context"] == 0


@pytest.mark.integration
def test_sample_with_the_embedded_embedder(tmp_path: Path, shared_data: Path) -> None:
    pool = tmp_path / "pool.jsonl"
    with open(shared_data / "banking77" / "dev.jsonl", encoding="utf-8") as handle:
        pool.write_text("".join(handle.readline() for _ in range(300)))
    out = tmp_path / "label.jsonl"
    result = runner.invoke(
        app, ["data", "sample", str(pool), "--out", str(out), "--budget", "12", "--cost-per-row", "0.5"]
    )
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 24 and "cluster coverage" in result.output
    assert len({r["label"] for r in rows}) >= 12  # spread over intents, not one
