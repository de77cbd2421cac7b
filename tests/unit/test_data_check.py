"""data check: every bad line reported as file:line: field: problem, nothing stops at the first."""

from __future__ import annotations

import json
from pathlib import Path

from tunewise.config import Project, project_from_dict
from tunewise.data.check import check_file, check_files, histogram, load_check_tokenizer

SCHEMA = {
    "type": "object",
    "properties": {"company": {"type": "string"}, "total": {"type": "string"}},
    "required": ["company", "total"],
}


def extract_project(tmp_path: Path) -> Project:
    raw = {
        "name": "x",
        "task": {"kind": "extract", "output_schema": SCHEMA},
        "data": {"train": "train.jsonl", "input_field": "text", "target_field": "fields"},
    }
    return project_from_dict(raw, tmp_path)


def good(i: int, text: str | None = None) -> str:
    return json.dumps(
        {
            "id": f"r{i}",
            "text": text or f"SHOP {i} TOTAL {i}.00",
            "fields": {"company": f"SHOP {i}", "total": f"{i}.00"},
        }
    )


def test_every_bad_line_is_reported(tmp_path: Path) -> None:
    project = extract_project(tmp_path)
    lines = [
        good(1).encode(),
        b'{"id": "r2", "text": "x", "fields": {',  # malformed JSON
        '{"id": "r3", "text": "caf\u00e9"}'.encode("latin-1"),  # wrong encoding
        json.dumps({"id": "r4", "text": "no target"}).encode(),  # missing target
        json.dumps({"id": "r5", "text": "x", "fields": {"company": "A"}}).encode(),  # schema: total missing
        json.dumps({"id": "r6", "text": "x", "fields": {"company": "A", "total": 5}}).encode(),  # schema: wrong type
        b"[1, 2]",  # not an object
        good(8, text="   ").encode(),  # empty input
        good(1).replace('"r1"', '"r9"').encode(),  # duplicated input of line 1
        good(1).encode(),  # duplicated id
        json.dumps(
            {"id": "r11", "text": "y" * (9 << 20), "fields": {"company": "A", "total": "1"}}
        ).encode(),  # 9 MB line
    ]
    path = tmp_path / "train.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n\n")
    report = check_file(project, path)
    problems = report.problems
    expected = [
        f"{path}:2: malformed JSON",
        f"{path}:3: not valid UTF-8",
        f"{path}:4: fields: missing target",
        f"{path}:5: fields: schema violation: 'total' is a required property",
        f"{path}:6: fields.total: schema violation: 5 is not of type 'string'",
        f"{path}:7: expected a JSON object, got list",
        f"{path}:8: text: empty input",
        f"{path}:10: id: duplicate id 'r1' (first on line 1)",
        f"{path}:11: line is ",
    ]
    for prefix in expected:
        assert any(p.startswith(prefix) for p in problems), (prefix, problems)
    assert len(problems) == len(expected)
    assert report.warnings == [f"{path}:9: text: duplicated input (same as line 1)"]
    assert report.rows == 7 and report.valid_rows == 3 and report.blank_lines == 1
    assert report.field_presence["id"] == 7 and report.target_presence == {"company": 3, "total": 3}


def test_empty_and_missing_files(tmp_path: Path) -> None:
    project = extract_project(tmp_path)
    (tmp_path / "empty.jsonl").write_bytes(b"")
    (tmp_path / "blank.jsonl").write_text("\n\n")
    report = check_files(project, [tmp_path / "empty.jsonl", tmp_path / "blank.jsonl", tmp_path / "nope.jsonl"])
    assert not report.ok
    assert report.problems == [
        f"{tmp_path / 'empty.jsonl'}: file is empty",
        f"{tmp_path / 'blank.jsonl'}: no rows in file (only blank lines)",
        f"{tmp_path / 'nope.jsonl'}: file not found",
    ]


def test_clean_file_passes_with_spec_files(tmp_path: Path) -> None:
    project = extract_project(tmp_path)
    (tmp_path / "train.jsonl").write_text("".join(good(i) + "\n" for i in range(5)))
    report = check_files(project)
    assert report.ok and report.files[0].valid_rows == 5 and report.warnings == []


def test_classify_label_outside_label_set(tmp_path: Path) -> None:
    raw = {
        "name": "c",
        "task": {"kind": "classify", "labels": ["a", "b"]},
        "data": {"train": "t.jsonl", "target_field": "label"},
    }
    project = project_from_dict(raw, tmp_path)
    (tmp_path / "t.jsonl").write_text(
        json.dumps({"id": "1", "text": "hi", "label": "a"})
        + "\n"
        + json.dumps({"id": "2", "text": "yo", "label": "z"})
        + "\n"
    )
    report = check_file(project, tmp_path / "t.jsonl")
    assert report.problems == [f"{tmp_path / 't.jsonl'}:2: label: label 'z' is not in the task's label set"]


def test_token_lengths_against_context_window(tmp_path: Path, tiny_model_dir: Path) -> None:
    project = extract_project(tmp_path)
    long_text = " ".join(f"word{i}" for i in range(1500))
    (tmp_path / "train.jsonl").write_text(good(1) + "\n" + good(2, text=long_text) + "\n")
    tokenizer, window = load_check_tokenizer(str(tiny_model_dir))
    assert window == 2048
    report = check_file(project, tmp_path / "train.jsonl", tokenizer=tokenizer, context_window=window)
    lengths = report.token_lengths
    assert lengths is not None and lengths["min"] < 200 and lengths["max"] > 2048 and lengths["over_context"] == 1
    assert sum(lengths["histogram"].values()) == 2
    assert (
        report.problems
        and report.problems[0].startswith(f"{tmp_path / 'train.jsonl'}:2: ")
        and "2048-token context window" in report.problems[0]
    )


def test_histogram_buckets() -> None:
    assert histogram([0, 63, 64, 300, 40000]) == {"0-63": 2, "64-127": 1, "256-511": 1, ">=32768": 1}
