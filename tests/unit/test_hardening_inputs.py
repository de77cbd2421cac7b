"""Hostile or careless input files fail with one line naming the file, the line and the key (issue 14)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tunewise.config import load_project, load_sweep, load_train_spec
from tunewise.data.check import check_file, check_files
from tunewise.errors import InputError
from tunewise.eval import evaluate
from tunewise.examples import load_examples
from tunewise.io.jsonl import read_jsonl

SPEC = """\
name: demo
task:
  kind: classify
  labels: [a, b]
data:
  dev: dev.jsonl
models:
  m:
    backend: mock
    outputs: [a]
candidates:
  - name: one
    model: m
"""
ROW = '{"id": "1", "text": "x", "target": "a"}\n'


def _project_dir(tmp_path: Path, spec: str = SPEC) -> Path:
    (tmp_path / "tunewise.yaml").write_text(spec, encoding="utf-8")
    (tmp_path / "dev.jsonl").write_text(ROW, encoding="utf-8")
    return tmp_path / "tunewise.yaml"


# -- YAML: aliases, duplicate keys, encodings ---------------------------------------------------------------------


def _alias_bomb() -> str:
    lines = ["name: demo", 'l0: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"l{i}: &l{i} [{','.join([f'*l{i - 1}'] * 9)}]" for i in range(1, 10)]
    return "\n".join(lines) + "\n"


def test_yaml_alias_bomb_is_refused_within_a_memory_cap(tmp_path: Path) -> None:
    spec = tmp_path / "tunewise.yaml"
    spec.write_text(_alias_bomb())
    assert len(spec.read_bytes()) < 2048
    # The load runs in a child capped at 1 GiB of address space and 60 s, so a regression fails instead of
    # exhausting the machine's memory.
    child = textwrap.dedent(
        f"""
        import resource
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
        from tunewise.config import load_project
        from tunewise.errors import InputError
        try:
            load_project({str(spec)!r})
        except InputError as exc:
            print(exc)
        """
    )
    result = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith(f"{spec}:3: YAML aliases are not supported"), result.stdout


def test_yaml_aliases_are_refused_in_train_and_sweep_configs(tmp_path: Path) -> None:
    config = tmp_path / "train.yaml"
    config.write_text("rank: &r 8\nalpha: *r\n")
    with pytest.raises(InputError, match=rf"^{config}:2: YAML aliases are not supported \(\*r\)"):
        load_train_spec(config)
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text("base: &b {rank: 8}\nfixed:\n  <<: *b\n")
    with pytest.raises(InputError, match=rf"^{sweep}:3: YAML aliases are not supported"):
        load_sweep(sweep)


def test_duplicate_yaml_keys_name_both_lines(tmp_path: Path) -> None:
    path = _project_dir(tmp_path, SPEC.replace("  labels: [a, b]\n", "  labels: [a, b]\n  labels: [c]\n"))
    with pytest.raises(InputError, match=rf"^{path}:5: task.labels: duplicate key \(first on line 4\)"):
        load_project(path)
    path = _project_dir(tmp_path, SPEC + "name: other\n")
    with pytest.raises(InputError, match=rf"^{path}:14: name: duplicate key \(first on line 1\)"):
        load_project(path)


def test_non_utf8_spec_names_the_file_line_and_byte(tmp_path: Path) -> None:
    path = tmp_path / "tunewise.yaml"
    path.write_bytes(SPEC.replace("name: demo", "name: d\xe9mo").encode("latin-1"))
    with pytest.raises(InputError, match=rf"^{path}:1: not valid UTF-8 \(invalid continuation byte at byte 7\)"):
        load_project(path)


def test_utf8_bom_is_accepted_in_yaml_and_jsonl(tmp_path: Path) -> None:
    path = _project_dir(tmp_path)
    path.write_bytes(b"\xef\xbb\xbf" + SPEC.encode())
    (tmp_path / "dev.jsonl").write_bytes(b"\xef\xbb\xbf" + ROW.encode() + ROW.replace('"1"', '"2"').encode())
    project = load_project(path)
    assert project.spec.name == "demo"
    assert [e.id for e in load_examples(project, tmp_path / "dev.jsonl")] == ["1", "2"]
    assert check_file(project, tmp_path / "dev.jsonl").problems == []


def test_non_utf8_schema_and_labels_files_name_the_file(tmp_path: Path) -> None:
    labels = tmp_path / "labels.json"
    labels.write_bytes('["caf\u00e9"]'.encode("latin-1"))
    path = _project_dir(tmp_path, SPEC.replace("  labels: [a, b]", "  labels_file: labels.json"))
    with pytest.raises(InputError, match=rf"^{labels}:1: task.labels_file: not valid UTF-8"):
        load_project(path)
    labels.write_text('["a", "b",]')
    with pytest.raises(InputError, match=rf"^{labels}:1: task.labels_file: malformed JSON"):
        load_project(path)


# -- candidate names ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["../../x", "a/b", ".hidden", "-flag", "two words", "x\\y", ""])
def test_candidate_names_are_identifiers(tmp_path: Path, name: str) -> None:
    path = _project_dir(tmp_path, SPEC.replace("name: one", f"name: {json.dumps(name)}"))
    with pytest.raises(InputError, match=rf"^{path}:12: candidates.0.name: .*identifier"):
        load_project(path)


def test_candidate_names_that_are_identifiers_load(tmp_path: Path) -> None:
    for name in ("zero-shot", "3-shot", "gpt-4o.mini_v2"):
        path = _project_dir(tmp_path, SPEC.replace("name: one", f"name: {name}"))
        assert load_project(path).spec.candidates[0].name == name


# -- spec-declared files and models name the spec line and key -------------------------------------------------------


def test_missing_data_file_names_the_spec_line_and_key(tmp_path: Path) -> None:
    path = _project_dir(tmp_path, SPEC.replace("dev: dev.jsonl", "dev: nope.jsonl"))
    project = load_project(path)
    expected = rf"^{path}:6: data.dev: file not found: {tmp_path.resolve() / 'nope.jsonl'}$"
    with pytest.raises(InputError, match=expected):
        project.split_path("dev")
    with pytest.raises(InputError, match=expected):
        evaluate(project, track=False, progress=False)
    with pytest.raises(InputError, match=expected):
        check_files(project, tokens=False)


def test_missing_schema_and_labels_files_name_the_spec_line_and_key(tmp_path: Path) -> None:
    path = _project_dir(tmp_path, SPEC.replace("  labels: [a, b]", "  labels_file: labels.json"))
    with pytest.raises(InputError, match=rf"^{path}:4: task.labels_file: labels file not found: .*labels.json$"):
        load_project(path)
    spec = SPEC.replace("kind: classify", "kind: extract").replace("labels: [a, b]", "output_schema_file: s.json")
    path = _project_dir(tmp_path, spec)
    with pytest.raises(InputError, match=rf"^{path}:4: task.output_schema_file: schema file not found: .*s.json$"):
        load_project(path)


def test_unknown_probe_model_names_the_spec_line_and_key(tmp_path: Path) -> None:
    path = _project_dir(tmp_path, SPEC + "decide:\n  probes:\n    model: gpt-9\n")
    with pytest.raises(InputError, match=rf"^{path}:16: decide.probes.model: unknown model 'gpt-9'"):
        load_project(path)


def test_local_model_not_found_names_the_spec_line_and_key(tmp_path: Path) -> None:
    spec = SPEC.replace("    backend: mock\n    outputs: [a]\n", "    backend: local\n    path: smollm2-999m\n")
    project = load_project(_project_dir(tmp_path, spec))
    with pytest.raises(InputError, match=rf"^{project.spec_file}:10: models.m.path: model not found: 'smollm2-999m'"):
        evaluate(project, track=False, progress=False)
    assert not (tmp_path / ".tunewise" / "runs").exists()


# -- data files ----------------------------------------------------------------------------------------------------


def test_a_directory_given_as_a_data_file_is_named_a_directory(tmp_path: Path) -> None:
    project = load_project(_project_dir(tmp_path))
    (tmp_path / "d").mkdir()
    assert check_file(project, tmp_path / "d").problems == [f"{tmp_path / 'd'}: is a directory, not a data file"]
    with pytest.raises(InputError, match="is a directory, not a data file"):
        list(read_jsonl(tmp_path / "d"))


@pytest.mark.parametrize(
    ("line", "column"),
    [('{"id": "2", "text": "y", "target": "b"', 39), ('{"id": "2" "text": "y"}', 12), ("{'id': 2}", 2)],
)
def test_malformed_json_has_the_same_line_and_column_in_check_and_eval(tmp_path: Path, line: str, column: int) -> None:
    project = load_project(_project_dir(tmp_path))
    dev = tmp_path / "dev.jsonl"
    dev.write_text(ROW + line + "\n")
    [checked] = check_file(project, dev).problems
    with pytest.raises(InputError) as error:
        load_examples(project, dev)
    assert checked == str(error.value)
    assert checked.startswith(f"{dev}:2: malformed JSON: ") and checked.endswith(f"(column {column})")


def test_non_utf8_data_line_names_line_and_byte_in_check_and_eval(tmp_path: Path) -> None:
    project = load_project(_project_dir(tmp_path))
    dev = tmp_path / "dev.jsonl"
    dev.write_bytes(ROW.encode() + '{"id": "2", "text": "caf\u00e9", "target": "a"}\n'.encode("latin-1"))
    [checked] = check_file(project, dev).problems
    with pytest.raises(InputError) as error:
        load_examples(project, dev)
    assert checked == str(error.value) == f"{dev}:2: not valid UTF-8 (invalid continuation byte at byte 24)"
