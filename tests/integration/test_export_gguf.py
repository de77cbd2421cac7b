"""`tunewise export` on the embedded model: merge, GGUF f16 + q8_0, reload, logits and task parity on receipts.

GGUF is tested here rather than on the tiny test model: llama.cpp's converter refuses the tiny model's home-made
BPE tokenizer ("BPE pre-tokenizer was not recognized"), while SmolLM2's tokenizer is one it knows. The first run
downloads the llama-cpp-python sdist (76 MB) once to take the converter from it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

ROOT = Path(__file__).resolve().parents[2]
RECEIPTS = ROOT / "examples" / "receipts"


def _small_receipts_project(root: Path) -> Path:
    (root / "data").mkdir(parents=True)
    shutil.copy(RECEIPTS / "schema.json", root / "schema.json")
    rows = sorted((RECEIPTS / "data" / "dev.jsonl").read_text(encoding="utf-8").splitlines(), key=len)[:2]
    (root / "data" / "dev.jsonl").write_text("\n".join(rows) + "\n")
    spec = yaml.safe_load((RECEIPTS / "tunewise.yaml").read_text())
    spec["data"].pop("train", None)
    spec["candidates"] = []
    spec["eval"] = {"max_new_tokens": 48, "batch_size": 2, "bootstrap_samples": 200}
    (root / "tunewise.yaml").write_text(yaml.safe_dump(spec))
    return root


def _adapter(out: Path) -> Path:
    import torch
    from peft import LoraConfig, get_peft_model

    from tunewise.models.loading import load_model

    torch.manual_seed(0)
    model, _ = load_model("smollm2-135m", device="cpu", dtype=torch.float32)
    peft_model = get_peft_model(
        model, LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"], lora_dropout=0.0)
    )
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.01)
    peft_model.save_pretrained(out)
    (out / "metadata.json").write_text(json.dumps({"base_model": "smollm2-135m"}))
    return out


@pytest.mark.integration
def test_export_gguf_and_parity_on_the_embedded_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if not (RECEIPTS / "tunewise.yaml").is_file():
        pytest.skip("examples/receipts is not present")
    from tunewise.cli.main import app

    project = _small_receipts_project(tmp_path / "receipts")
    adapter = _adapter(tmp_path / "adapter")
    monkeypatch.chdir(project)
    out = tmp_path / "export"
    result = CliRunner().invoke(app, ["export", str(adapter), "--out", str(out), "--gguf", "f16,q8_0", "--eval", "2"])
    assert (out / "parity.json").is_file(), result.output
    parity = json.loads((out / "parity.json").read_text())
    by_name = {a["name"]: a for a in parity["artifacts"]}
    assert set(by_name) == {"merged", "gguf-f16", "gguf-q8_0"}, result.output
    assert result.exit_code == (0 if parity["passed"] else 1), result.output
    for name in ("gguf/model-f16.gguf", "gguf/model-q8_0.gguf", "merged/model.safetensors", "parity.md"):
        assert (out / name).is_file(), name
    assert by_name["merged"]["logits"]["max_abs_diff"] < 1e-3
    f16 = by_name["gguf-f16"]
    assert f16["details"]["tokenizer_matches"] and f16["details"]["chat_template_matches"]
    assert f16["logits"]["max_abs_diff"] < 0.5 and f16["logits"]["top1_agreement"] > 0.98
    assert by_name["gguf-q8_0"]["logits"]["top1_agreement"] > 0.9
    # q8_0 is smaller than f16, f16 about half the fp32 merge.
    assert (out / "gguf/model-q8_0.gguf").stat().st_size < (out / "gguf/model-f16.gguf").stat().st_size
    for artifact in by_name.values():
        assert artifact["task"]["n"] == 2 and artifact["task"]["metric"] == "field_accuracy"
    assert parity["passed"], (out / "parity.md").read_text()
