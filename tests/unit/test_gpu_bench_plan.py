"""The GPU benchmarks' plans, made on CPU: ``--dry-run`` of gpu_train.py, gpu_serve.py and gpu_check.sh.

No CUDA and no model weights: the plans read parameter counts from config.json (or a table of known sizes), estimate
each part's seconds and refuse a total over ``--budget-s``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "bench"
LLAMA_1B = {  # the shape of Llama-3.2-1B: 1,235,814,400 parameters
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_size": 2048,
    "num_hidden_layers": 16,
    "intermediate_size": 8192,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "head_dim": 64,
    "vocab_size": 128256,
    "tie_word_embeddings": True,
}


def bench(script: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    command = ["bash", str(BENCH / script)] if script.endswith(".sh") else [sys.executable, str(BENCH / script)]
    return subprocess.run(
        [*command, *args], cwd=ROOT, capture_output=True, text=True, timeout=60, env={**os.environ, **(env or {})}
    )


def model_dir(parent: Path, name: str, *, weights: bool) -> Path:
    directory = parent / name
    directory.mkdir()
    (directory / "config.json").write_text(json.dumps(LLAMA_1B))
    if weights:
        (directory / "model.safetensors").write_bytes(b"")  # a plan never opens it
    return directory


def load_bench_module(name: str, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.syspath_prepend(str(BENCH))  # undone after the test, with the scripts' own sys.path inserts
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def plan_of(done: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


# -- gpu_train.py ---------------------------------------------------------------------------------------------------


def test_train_dry_run_plans_lora_qlora_and_trl_within_the_budget() -> None:
    plan = plan_of(bench("gpu_train.py", "--dry-run"))

    assert [part["name"] for part in plan["parts"]] == ["lora", "qlora", "trl"]
    assert plan["parts"][1]["requires"] == ["bitsandbytes"]
    assert all(part["estimate_s"] > 0 for part in plan["parts"])
    assert plan["total_s"] == pytest.approx(sum(part["estimate_s"] for part in plan["parts"]), abs=0.1)
    assert plan["budget_s"] == 540 and plan["total_s"] <= 540 and plan["fits"] is True
    assert plan["shapes"] == {
        "steps": 20,
        "batch_size": 16,
        "max_length": 1024,
        "examples": 400,
        "max_tokens_per_step": 16 * 1024,
    }
    assert plan["gpu"]["name"] == "H200" and plan["mfu"]["peak_tflops"] == 989.0
    assert "6 * N_params * tokens_per_s" in plan["mfu"]["formula"]
    # the always-there fallback, and the plan says it is no test of the 1B-8B goal
    assert plan["model"]["n_params"] == 134_515_008 and plan["model"]["in_goal_range"] is False
    assert any("far below the 1B-8B" in note for note in plan["model"]["notes"])


def test_train_dry_run_reads_the_parameter_count_from_config_json(tmp_path: Path) -> None:
    model = model_dir(tmp_path, "my-model", weights=False)
    done = bench("gpu_train.py", "--dry-run", "--model", str(model), "--random-init", "--runs", "lora", "--steps", "5")
    plan = plan_of(done)

    assert plan["model"]["n_params"] == 1_235_814_400
    assert plan["model"]["n_params_source"].startswith("config.json") and plan["model"]["in_goal_range"] is True
    assert [part["name"] for part in plan["parts"]] == ["random-weights", "lora"]
    assert plan["shapes"]["steps"] == 5
    assert "1.24B parameters" in done.stderr and "fits the budget of 540 s" in done.stderr


def test_a_train_plan_over_the_budget_exits_non_zero_with_the_reason() -> None:
    done = bench("gpu_train.py", "--dry-run", "--budget-s", "10")

    assert done.returncode != 0
    assert "over the budget of 10 s (--budget-s)" in done.stderr
    assert json.loads(done.stdout)["fits"] is False  # the plan is still printed, to see what to cut


def test_a_model_absent_here_is_planned_from_its_name_and_stops_the_real_run(tmp_path: Path) -> None:
    absent = tmp_path / "Llama-3.1-8B-Instruct"
    plan = plan_of(bench("gpu_train.py", "--dry-run", "--model", str(absent)))
    assert plan["model"]["found_here"] is False and plan["model"]["n_params"] == 8_030_261_248
    assert any("no config.json here" in note for note in plan["model"]["notes"])

    done = bench("gpu_train.py", "--model", str(absent))  # stops before CUDA or torch are needed
    assert done.returncode != 0
    assert f"--model {absent}: no config.json there" in done.stderr and "reaches no model hub" in done.stderr


def test_a_model_without_weights_needs_random_init(tmp_path: Path) -> None:
    done = bench("gpu_train.py", "--model", str(model_dir(tmp_path, "cfg-only", weights=False)))
    assert done.returncode != 0
    assert "no weight files there; pass --random-init" in done.stderr


def test_the_mfu_goal_is_pass_or_fail_and_judged_on_1b_to_8b_models(monkeypatch: pytest.MonkeyPatch) -> None:
    goal = load_bench_module("gpu_train", monkeypatch).goal

    assert goal(0.45, 1_235_814_400)["verdict"].startswith("PASS: tunewise LoRA 45.0% MFU (6N), goal >= 40%")
    assert goal(0.31, 8_030_261_248) == {
        "pass": False,
        "mfu_6n": 0.31,
        "model_in_goal_range": True,
        "verdict": "FAIL: tunewise LoRA 31.0% MFU (6N), goal >= 40%",
    }
    small = goal(0.5, 134_515_008)
    assert small["pass"] is True and small["model_in_goal_range"] is False
    assert "0.13B parameters, outside the goal's 1B-8B: not a test of it" in small["verdict"]
    assert goal(None, 1_235_814_400)["pass"] is None


def test_parameter_counts_match_the_published_sizes(monkeypatch: pytest.MonkeyPatch) -> None:
    gpu_plan = load_bench_module("gpu_plan", monkeypatch)
    smollm2_135m = {
        "hidden_size": 576,
        "num_hidden_layers": 30,
        "intermediate_size": 1536,
        "num_attention_heads": 9,
        "num_key_value_heads": 3,
        "vocab_size": 49152,
        "tie_word_embeddings": True,
    }
    llama_8b = {**LLAMA_1B, "hidden_size": 4096, "num_hidden_layers": 32, "intermediate_size": 14336}
    llama_8b |= {"head_dim": 128, "tie_word_embeddings": False}

    assert gpu_plan.params_from_config(smollm2_135m) == 134_515_008
    assert gpu_plan.params_from_config(LLAMA_1B) == 1_235_814_400
    assert gpu_plan.params_from_config(llama_8b) == 8_030_261_248
    assert gpu_plan.params_from_config({**LLAMA_1B, "num_local_experts": 8}) is None  # not a dense model


def test_random_weights_copy_keeps_config_and_tokenizer_and_writes_weights(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gpu_plan = load_bench_module("gpu_plan", monkeypatch)
    tiny = {**LLAMA_1B, "hidden_size": 32, "num_hidden_layers": 2, "intermediate_size": 64}
    tiny |= {"num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 8, "vocab_size": 128}
    source = tmp_path / "source"
    source.mkdir()
    (source / "config.json").write_text(json.dumps(tiny))
    (source / "tokenizer.json").write_text("{}")
    (source / "model.safetensors.index.json").write_text("{}")  # names shards that are not copied

    out = gpu_plan.random_weights_copy(source, tmp_path / "random")

    names = {p.name for p in out.iterdir()}
    assert {"config.json", "tokenizer.json", "model.safetensors"} <= names
    assert "model.safetensors.index.json" not in names
    from safetensors import safe_open

    with safe_open(str(out / "model.safetensors"), "pt") as weights:
        embed = weights.get_tensor("model.embed_tokens.weight")
    assert tuple(embed.shape) == (128, 32) and str(embed.dtype) == "torch.bfloat16" and embed.std() > 0


# -- gpu_serve.py ---------------------------------------------------------------------------------------------------


def test_serve_dry_run_plans_the_vllm_multi_adapter_run(tmp_path: Path) -> None:
    model = model_dir(tmp_path, "Llama-3.2-1B", weights=True)
    done = bench("gpu_serve.py", "--dry-run", "--model", str(model), "--adapters", "3", "--concurrency", "1", "32")
    plan = plan_of(done)

    assert [part["name"] for part in plan["parts"]] == ["adapters", "vllm-start", "load@1", "load@32"]
    assert plan["parts"][1]["requires"] == ["vllm", "openai"]
    assert plan["parts"][2]["estimate_s"] > plan["parts"][3]["estimate_s"]  # 1 client takes 32x the rounds
    assert plan["total_s"] <= plan["budget_s"] == 540 and plan["fits"] is True
    assert plan["model"]["n_params"] == 1_235_814_400 and plan["model"]["in_goal_range"] is True
    argv = plan["vllm"]["argv"]
    assert argv[:3] == ["vllm", "serve", str(model)] and "--enable-lora" in argv
    assert "vllm command: vllm serve " in done.stderr


def test_a_serve_plan_over_the_budget_exits_non_zero_with_the_reason() -> None:
    done = bench("gpu_serve.py", "--dry-run", "--budget-s", "60")
    assert done.returncode != 0
    assert "gpu_serve.py: the plan needs" in done.stderr and "over the budget of 60 s" in done.stderr


# -- gpu_check.sh ---------------------------------------------------------------------------------------------------


def test_gpu_check_dry_run_plans_both_scripts_and_summarises(tmp_path: Path) -> None:
    done = bench("gpu_check.sh", "--dry-run", env={"OUT": str(tmp_path), "PYTHON": sys.executable})

    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    train = json.loads((tmp_path / "train.json").read_text())
    serve = json.loads((tmp_path / "serve.json").read_text())
    assert [part["name"] for part in train["parts"]] == ["lora", "qlora", "trl"]
    assert serve["parts"][0]["name"] == "adapters" and serve["shapes"]["requests"] == 128  # the check's own shapes
    assert train["budget_s"] + serve["budget_s"] <= 540  # the two parts' shares of the 10 minutes
    assert f"train plan: ~{train['total_s']:.0f} s of 200 s, fits" in done.stdout
    assert f"serve plan: ~{serve['total_s']:.0f} s of 340 s, fits" in done.stdout
    assert '"parts"' not in done.stdout  # the JSON is in the files, not on the screen


def test_gpu_check_fails_when_a_plan_does_not_fit(tmp_path: Path) -> None:
    env = {"OUT": str(tmp_path), "PYTHON": sys.executable, "TRAIN_BUDGET_S": "10"}
    done = bench("gpu_check.sh", "--dry-run", env=env)

    assert done.returncode == 1
    assert "== train: FAILED (exit 1)" in done.stdout and "over the budget of 10 s" in done.stdout
    assert "serve plan:" in done.stdout  # the serve part is still planned


def test_gpu_check_summarises_real_results(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    gpu_plan = load_bench_module("gpu_plan", monkeypatch)
    train = {
        "lora": {"tokens_per_s": 52000.0, "mfu_6n": 0.412, "mfu_4n": 0.275},
        "qlora": {"skipped": "not importable here: bitsandbytes"},
        "goal": {"verdict": "PASS: tunewise LoRA 41.2% MFU (6N), goal >= 40%"},
    }
    (tmp_path / "train.json").write_text(json.dumps(train))
    (tmp_path / "serve.json").write_text(json.dumps({"vllm": {"skipped": "not importable here: vllm"}}))

    assert gpu_plan.summary(tmp_path) == [
        "train lora: 52000 tok/s, MFU 41.2% (6N)",
        "train qlora: skipped: not importable here: bitsandbytes",
        "train goal: PASS: tunewise LoRA 41.2% MFU (6N), goal >= 40%",
        "serve vllm: skipped: not importable here: vllm",
    ]


def test_gpu_check_help_and_unknown_arguments() -> None:
    assert "bench/gpu_check.sh --dry-run" in bench("gpu_check.sh", "--help").stdout
    done = bench("gpu_check.sh", "--frobnicate")
    assert done.returncode == 2 and "unknown argument --frobnicate" in done.stderr
