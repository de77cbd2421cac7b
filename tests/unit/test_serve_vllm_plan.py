"""The ``vllm serve`` command line the vLLM engine plans: every adapter a LoRA module, a LoRA rank that fits them."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tunewise.config import ServeSpec
from tunewise.errors import InputError
from tunewise.serve.catalog import ServedModel
from tunewise.serve.engines.vllm import VllmDriver

ROOT = Path(__file__).resolve().parents[2]


def served(tmp_path: Path, ranks: list[int]) -> list[ServedModel]:
    base_dir = tmp_path / "base"
    base_dir.mkdir()
    (base_dir / "config.json").write_text("{}")
    models = [ServedModel(name="my-base", kind="base", base=str(base_dir), version="b" * 64, created=0)]
    for i, rank in enumerate(ranks):
        models.append(
            ServedModel(
                name=f"adapter-{i}",
                kind="adapter",
                base=str(base_dir),
                version=f"{i}" * 64,
                created=0,
                adapter_dir=tmp_path / f"adapter-{i}",
                lora_rank=rank,
            )
        )
    return models


def lora_modules(argv: list[str]) -> list[dict[str, str]]:
    start = argv.index("--lora-modules") + 1
    modules = []
    for item in argv[start:]:
        if item.startswith("--"):
            break
        modules.append(json.loads(item))
    return modules


def test_every_adapter_is_a_lora_module_of_the_served_base(tmp_path: Path) -> None:
    models = served(tmp_path, [8, 24, 16])
    argv = VllmDriver(ServeSpec(engine="vllm", parallel=32), executable=("vllm",)).plan(models).argv(8123)

    assert argv[:3] == ["vllm", "serve", str(tmp_path / "base")]
    assert argv[argv.index("--served-model-name") + 1] == "my-base"
    assert argv[argv.index("--port") + 1] == "8123"
    assert argv[argv.index("--max-num-seqs") + 1] == "32"
    assert "--enable-lora" in argv
    assert lora_modules(argv) == [
        {"name": f"adapter-{i}", "path": str(tmp_path / f"adapter-{i}"), "base_model_name": "my-base"} for i in range(3)
    ]
    # vLLM accepts only some ranks: the smallest allowed one that holds the largest adapter (24 -> 32)
    assert argv[argv.index("--max-lora-rank") + 1] == "32"


def test_a_base_alone_is_served_without_lora(tmp_path: Path) -> None:
    argv = VllmDriver(ServeSpec(engine="vllm"), executable=("vllm",)).plan(served(tmp_path, [])).argv(8000)
    assert "--enable-lora" not in argv and "--lora-modules" not in argv


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vLLM is installed here")
def test_without_vllm_the_plan_says_how_to_install_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no `vllm` executable either
    with pytest.raises(InputError, match=r"tunewise\[gpu\]"):
        VllmDriver(ServeSpec(engine="vllm")).plan(served(tmp_path, [16]))


def test_gpu_bench_dry_run_plans_every_adapter_with_a_rank_that_fits(tmp_path: Path) -> None:
    base = tmp_path / "base"
    base.mkdir()
    (base / "config.json").write_text("{}")  # the plan reads no weights; the served base is this directory
    out = tmp_path / "plan.json"
    command = [
        "bench/gpu_serve.py",
        "--dry-run",
        "--model",
        str(base),
        "--adapters",
        "3",
        "--rank",
        "24",
        "--requests",
        "32",
    ]
    done = subprocess.run(
        [sys.executable, *command, "--json", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    argv = json.loads(out.read_text())["vllm"]["argv"]
    assert json.loads(done.stdout)["vllm"]["argv"] == argv
    assert argv[:3] == ["vllm", "serve", str(base)]
    assert "--enable-lora" in argv
    assert [m["name"] for m in lora_modules(argv)] == ["lora-00", "lora-01", "lora-02"]
    assert all(m["base_model_name"] == str(base) for m in lora_modules(argv))
    assert int(argv[argv.index("--max-lora-rank") + 1]) >= 24
