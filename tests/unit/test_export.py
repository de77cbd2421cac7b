"""Export: merge parity on the tiny model, files written, task parity through the harness, converter handling."""

from __future__ import annotations

import io
import json
import tarfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tests.support.adapters import make_adapter
from tunewise.config import project_from_dict
from tunewise.errors import InputError
from tunewise.export import DEFAULT_TOLERANCES, Tolerance, export_adapter
from tunewise.export.gguf import gguf_types
from tunewise.export.parity import (
    GgufChecks,
    LogitParity,
    TaskParity,
    compare_logits,
    judge_artifact,
    parity_report,
    verdict,
)
from tunewise.export.pipeline import ExportResult
from tunewise.llamacpp.convert import convert_to_gguf, converter_dir
from tunewise.llamacpp.sdist import LlamaCppError

SCHEMA = {
    "type": "object",
    "properties": {"total": {"type": "string"}},
    "required": ["total"],
    "additionalProperties": False,
}


@pytest.fixture(scope="module")
def adapter(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_adapter(tiny_model_dir, tmp_path_factory.mktemp("adapter") / "adapter")


def tiny_project(root: Path) -> Any:
    root.mkdir(parents=True, exist_ok=True)
    dev = [{"id": f"d{i}", "text": f"SHOP {i} TOTAL {i}.50 RM", "fields": {"total": f"{i}.50"}} for i in range(3)]
    (root / "dev.jsonl").write_text("".join(json.dumps(r) + "\n" for r in dev))
    raw = {
        "name": "tiny-export",
        "task": {"kind": "extract", "instructions": "Extract the total.", "output_schema": SCHEMA},
        "data": {"dev": "dev.jsonl", "target_field": "fields"},
        "eval": {"max_new_tokens": 8, "bootstrap_samples": 100},
    }
    return project_from_dict(raw, root)


def test_merge_keeps_logits_and_writes_the_files(adapter: Path, tiny_model_dir: Path, tmp_path: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    from tunewise.models.loading import load_model

    result = export_adapter(adapter, out_dir=tmp_path / "out", gguf=(), progress=False)
    assert result.passed
    merged = result.parity.artifacts[0]
    assert merged.name == "merged" and merged.logits is not None
    assert merged.logits.max_abs_diff < 1e-4 and merged.logits.top1_agreement == 1.0 and merged.logits.positions > 20
    for name in (
        "merged/model.safetensors",
        "merged/config.json",
        "merged/tokenizer.json",
        "parity.json",
        "parity.md",
        "export.json",
    ):
        assert (tmp_path / "out" / name).is_file(), name
    manifest = json.loads((tmp_path / "out" / "export.json").read_text())
    assert "merged/model.safetensors" in manifest["files"] and manifest["passed"] is True
    assert json.loads((tmp_path / "out" / "parity.json").read_text())["artifacts"][0]["passed"] is True

    # Independently: the merged directory alone (no PEFT) reproduces base + adapter, and differs from the base.
    ids = torch.tensor([[5, 17, 42, 99, 3, 250, 7]])
    reference, _ = load_model(str(tiny_model_dir), adapter=adapter, device="cpu", dtype=torch.float32)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    alone = AutoModelForCausalLM.from_pretrained(tmp_path / "out" / "merged", dtype=torch.float32).eval()
    with torch.no_grad():
        want, got, plain = reference(ids).logits, alone(ids).logits, base(ids).logits
    assert (want - got).abs().max() < 1e-4
    assert (want - plain).abs().max() > 1e-2, "the adapter should change the logits"
    assert not any(k.startswith("base_model") or "lora" in k for k in alone.state_dict())


def test_task_parity_through_the_eval_harness(adapter: Path, tmp_path: Path) -> None:
    project = tiny_project(tmp_path / "proj")
    result = export_adapter(
        adapter, out_dir=tmp_path / "out", gguf=(), eval_examples=3, project=project, progress=False
    )
    task = result.parity.artifacts[0].task
    assert task is not None and task.n == 3 and task.metric == "field_accuracy"
    assert task.identical_outputs == 3 and task.delta == 0.0
    assert (tmp_path / "out" / "eval" / "predictions.jsonl").is_file()
    markdown = (tmp_path / "out" / "parity.md").read_text()
    assert "**PASS**" in markdown and "3/3" in markdown


def test_parity_failure_is_reported_with_numbers(adapter: Path, tmp_path: Path) -> None:
    strict = {"merged": Tolerance(max_abs_logit=0.0, min_top1_agreement=1.0, max_metric_drop=0.0)}
    result = export_adapter(adapter, out_dir=tmp_path / "out", gguf=(), tolerances=strict, progress=False)
    merged = result.parity.artifacts[0]
    if merged.logits is not None and merged.logits.max_abs_diff == 0.0:
        pytest.skip("merge was bit-exact on this machine")
    assert not result.passed and "max |Δlogit|" in merged.failures[0]
    assert "FAIL" in (tmp_path / "out" / "parity.md").read_text()


def test_verdict_checks_every_tolerance() -> None:
    tolerance = Tolerance(max_abs_logit=0.5, min_top1_agreement=0.98, max_metric_drop=0.02)
    good = LogitParity(max_abs_diff=0.1, mean_abs_diff=0.01, top1_agreement=0.99, prompts=2, positions=100)
    assert verdict(good, None, tolerance) == []
    bad = replace(good, max_abs_diff=0.7, top1_agreement=0.9)
    task = TaskParity(
        metric="field_accuracy", reference=0.8, value=0.7, delta=-0.1, p_value=0.3, identical_outputs=5, n=10
    )
    failures = verdict(bad, task, tolerance)
    assert len(failures) == 3 and "0.8" in failures[2] and "0.7" in failures[2]
    assert verdict(good, replace(task, value=0.9, delta=0.1), tolerance) == []  # improving is not a failure


def test_gguf_checks_fail_an_artifact_and_the_result_round_trips() -> None:
    tolerance = DEFAULT_TOLERANCES["f16"]
    logits = LogitParity(max_abs_diff=0.1, mean_abs_diff=0.01, top1_agreement=0.99, prompts=2, positions=100)
    checks = GgufChecks(
        file_sha256="ab" * 32,
        bytes=1000,
        tokenizer_matches=True,
        chat_template_matches=False,
        file_type=1,
        vs_merged=logits,
    )
    lenient = judge_artifact(
        name="gguf-f16",
        kind="f16",
        path="/x/gguf/model-f16.gguf",
        logits=logits,
        task=None,
        tolerance=tolerance,
        gguf=checks,
    )
    assert lenient.passed and lenient.failures == []  # the adapter's tokenizer has no chat template to compare
    strict = judge_artifact(
        name="gguf-f16",
        kind="f16",
        path="/x/gguf/model-f16.gguf",
        logits=logits,
        task=None,
        tolerance=tolerance,
        gguf=replace(checks, tokenizer_matches=False),
        template_expected=True,
    )
    assert (
        not strict.passed
        and len(strict.failures) == 2
        and "tokenizer" in strict.failures[0]
        and "chat template" in strict.failures[1]
    )
    merged = judge_artifact(
        name="merged", kind="merged", path="/x/merged", logits=logits, task=None, tolerance=DEFAULT_TOLERANCES["merged"]
    )
    assert not merged.passed and "max |Δlogit|" in merged.failures[0]
    report = parity_report("/x/adapter", "base", [merged, lenient])
    assert not report.passed and parity_report("/x/adapter", "base", [lenient]).passed
    result = ExportResult(
        out_dir=Path("/x"),
        merged_dir=Path("/x/merged"),
        gguf_files={"f16": Path("/x/gguf/model-f16.gguf")},
        parity=report,
    )
    data = json.loads(json.dumps(result.to_dict()))
    assert (
        data["parity"]["artifacts"][1]["details"]["vs_merged"]["positions"] == 100 and data["parity"]["passed"] is False
    )
    assert ExportResult.from_dict(data) == result


def test_gguf_types_are_checked_once_in_the_library() -> None:
    assert gguf_types(["q8_0", "f16", "q8_0"]) == ["q8_0", "f16"]
    with pytest.raises(InputError, match="unknown GGUF type ''"):
        gguf_types(["f16", "", "q8_0"])


def test_compare_logits_numbers() -> None:
    import torch

    ref = [torch.tensor([[0.0, 1.0, 2.0], [3.0, 0.0, 0.0]])]
    cand = [torch.tensor([[0.0, 1.5, 2.0], [0.0, 3.5, 0.0]])]
    parity = compare_logits(ref, cand)
    assert parity.max_abs_diff == 3.5 and parity.top1_agreement == 0.5 and parity.positions == 2


def test_bad_inputs_are_clear_errors(adapter: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"no adapter_config\.json"):
        export_adapter(tmp_path, out_dir=tmp_path / "o", gguf=(), progress=False)
    (tmp_path / "exists").mkdir()
    with pytest.raises(InputError, match="already exists"):
        export_adapter(adapter, out_dir=tmp_path / "exists", gguf=(), progress=False)
    with pytest.raises(InputError, match="unknown GGUF type 'q4_k'"):
        export_adapter(adapter, out_dir=tmp_path / "o", gguf=("q4_k",), progress=False)
    with pytest.raises(InputError, match="needs a project"):
        export_adapter(adapter, out_dir=tmp_path / "o", gguf=(), eval_examples=2, progress=False)
    assert not (tmp_path / "o").exists()


def test_cli_exit_codes(adapter: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tunewise.cli.main import app

    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    ok = runner.invoke(app, ["export", str(adapter), "--out", str(tmp_path / "a"), "--no-gguf"])
    assert ok.exit_code == 0, ok.output
    assert "merged" in ok.output and "pass" in ok.output
    bad_type = runner.invoke(app, ["export", str(adapter), "--out", str(tmp_path / "b"), "--gguf", "f16,,q8_0"])
    assert bad_type.exit_code == 1 and "unknown GGUF type ''" in bad_type.output
    monkeypatch.setitem(
        DEFAULT_TOLERANCES, "merged", Tolerance(max_abs_logit=0.0, min_top1_agreement=1.01, max_metric_drop=0.0)
    )
    failed = runner.invoke(app, ["export", str(adapter), "--out", str(tmp_path / "c"), "--no-gguf"])
    assert failed.exit_code == 1 and "parity failure" in failed.output and "top-1 agreement" in failed.output
    assert (tmp_path / "c" / "parity.json").is_file()  # the numbers stay on disk for a failed export


def _fake_sdist(path: Path, script: str) -> Path:
    files = {
        "llama_cpp_python-9.9.9/vendor/llama.cpp/convert_hf_to_gguf.py": script,
        "llama_cpp_python-9.9.9/vendor/llama.cpp/conversion/__init__.py": "",
        "llama_cpp_python-9.9.9/vendor/llama.cpp/gguf-py/gguf/__init__.py": "",
        "llama_cpp_python-9.9.9/vendor/llama.cpp/ggml/src/ggml.c": "int x;",
        "llama_cpp_python-9.9.9/llama_cpp/llama.py": "",
    }
    with tarfile.open(path, "w:gz") as archive:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def test_converter_is_extracted_from_the_sdist_and_its_failures_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    failing = (
        "import sys\nprint('loading model')\nsys.exit('NotImplementedError: BPE pre-tokenizer was not recognized')\n"
    )
    monkeypatch.setenv("TUNEWISE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("TUNEWISE_LLAMA_CPP_SDIST", str(_fake_sdist(tmp_path / "sdist.tar.gz", failing)))
    directory = converter_dir("9.9.9")
    kept = sorted(str(p.relative_to(directory)) for p in directory.rglob("*") if p.is_file())
    assert kept == ["conversion/__init__.py", "convert_hf_to_gguf.py", "gguf-py/gguf/__init__.py"]
    with pytest.raises(LlamaCppError, match="pre-tokenizer") as info:
        convert_to_gguf(tmp_path, tmp_path / "m.gguf", "f16")
    assert "does not know this tokenizer" in str(info.value)
    with pytest.raises(LlamaCppError, match="unknown GGUF type"):
        convert_to_gguf(tmp_path, tmp_path / "m.gguf", "q4_0")


def test_missing_sdist_says_how_to_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TUNEWISE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("TUNEWISE_LLAMA_CPP_SDIST", str(tmp_path / "missing.tar.gz"))
    with pytest.raises(LlamaCppError, match="is not a file"):
        converter_dir("9.9.9")
