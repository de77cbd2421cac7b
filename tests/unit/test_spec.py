"""tunewise.yaml validation: unknown or wrong keys and invalid schemas name the file, the line and the key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tunewise.config import load_project
from tunewise.errors import InputError
from tunewise.examples import load_examples

BASE = """\
name: demo
task:
  kind: extract
  output_schema_file: schema.json
data:
  dev: dev.jsonl
  target_field: fields
candidates:
  - name: zero
"""
SCHEMA = {"type": "object", "properties": {"total": {"type": "string"}}}


def _write(tmp_path: Path, spec: str, schema: object = SCHEMA) -> Path:
    (tmp_path / "tunewise.yaml").write_text(spec)
    (tmp_path / "schema.json").write_text(json.dumps(schema))
    return tmp_path / "tunewise.yaml"


def test_valid_spec_loads_with_defaults(tmp_path: Path) -> None:
    project = load_project(_write(tmp_path, BASE))
    assert project.output_schema == SCHEMA
    assert project.spec.primary_metric == "field_accuracy"
    assert project.spec.candidates[0].model == "smollm2-135m"
    (tmp_path / "dev.jsonl").write_text("")
    assert project.split_path("dev") == tmp_path.resolve() / "dev.jsonl"


def test_unknown_key_names_file_line_and_expected_keys(tmp_path: Path) -> None:
    path = _write(tmp_path, BASE.replace("  kind: extract", "  kind: extract\n  instructons: hi"))
    with pytest.raises(InputError) as error:
        load_project(path)
    message = str(error.value)
    assert message.startswith(f"{path}:4: task.instructons: unknown key")
    assert "instructions" in message


def test_wrong_value_names_the_key(tmp_path: Path) -> None:
    path = _write(tmp_path, BASE.replace("kind: extract", "kind: summarise"))
    with pytest.raises(InputError, match=r"tunewise.yaml:3: task.kind: .*'summarise'"):
        load_project(path)


def test_unknown_candidate_model(tmp_path: Path) -> None:
    path = _write(tmp_path, BASE + "    model: gpt-9\n")
    with pytest.raises(InputError, match="unknown model 'gpt-9'"):
        load_project(path)


def test_invalid_json_schema_is_rejected(tmp_path: Path) -> None:
    path = _write(tmp_path, BASE, {"type": "objekt"})
    with pytest.raises(InputError, match=r"schema.json: task.output_schema_file: not a valid JSON Schema"):
        load_project(path)


def test_missing_spec_and_malformed_yaml(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="spec file not found"):
        load_project(tmp_path / "nope.yaml")
    path = _write(tmp_path, "name: [unclosed\n")
    with pytest.raises(InputError, match="malformed YAML"):
        load_project(path)


def test_data_errors_name_file_line_and_field(tmp_path: Path) -> None:
    project = load_project(_write(tmp_path, BASE))
    dev = tmp_path / "dev.jsonl"
    dev.write_text('{"id": "1", "text": "a", "fields": {"total": "1"}}\n{"id": "2", "text": "b"}\n')
    with pytest.raises(InputError) as error:
        load_examples(project, dev)
    assert str(error.value) == f"{dev}:2: fields: missing target"
    dev.write_text('{"id": "1", "text": "a", "fields": "{not json"}\n')
    with pytest.raises(InputError, match=r":1: fields: target is not JSON"):
        load_examples(project, dev)
    dev.write_bytes(b'{"id": "1", "text": "\xff"}\n')
    with pytest.raises(InputError, match=r":1: not valid UTF-8"):
        load_examples(project, dev)


def test_accepts_chat_and_prompt_completion_rows(tmp_path: Path) -> None:
    project = load_project(_write(tmp_path, BASE))
    dev = tmp_path / "dev.jsonl"
    chat = {"messages": [{"role": "user", "content": "r"}, {"role": "assistant", "content": '{"total": "2"}'}]}
    dev.write_text(json.dumps(chat) + "\n" + json.dumps({"prompt": "p", "completion": '{"total": "3"}'}) + "\n")
    first, second = load_examples(project, dev)
    assert first.messages == [{"role": "user", "content": "r"}] and first.target == {"total": "2"}
    assert second.target == {"total": "3"} and second.source.endswith("dev.jsonl:2")


def test_cross_section_checks_name_the_key_and_its_line(tmp_path: Path) -> None:
    with pytest.raises(InputError) as info:
        load_project(_write(tmp_path, BASE + "targets:\n  threshold: 0.8\n  metric: rouge_l\n"))
    assert (info.value.field, info.value.line) == ("targets.metric", 12)
    assert "not a extract metric" in str(info.value)
    with pytest.raises(InputError) as info:
        load_project(_write(tmp_path, BASE + "  - name: hosted\n    model: gpt-9\n"))
    assert (info.value.field, info.value.line) == ("candidates.1.model", 11)


def test_targets_in_wrong_units_fail_on_load(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="milliseconds") as info:
        load_project(_write(tmp_path, BASE + "targets:\n  p95_latency_ms: 0.5\n"))
    assert (info.value.field, info.value.line) == ("targets.p95_latency_ms", 11)
    with pytest.raises(InputError, match="per-token price"):
        load_project(_write(tmp_path, BASE + "targets:\n  cost_per_1m_tokens: 0.0000002\n"))
    with pytest.raises(InputError, match="met by any model"):
        load_project(_write(tmp_path, BASE + "targets:\n  threshold: 0\n"))
