"""Training tokens/s and MFU on a GPU machine: tunewise LoRA and QLoRA against TRL ``SFTTrainer`` (needs CUDA).

Runs the same comparison as ``train_throughput.py`` (tunewise's loop vs TRL ``SFTTrainer`` defaults, same model,
receipts, LoRA, steps, batch and max length) at GPU-sized shapes, plus tunewise with the base in 4-bit (QLoRA,
when bitsandbytes is importable), then reports model FLOPs utilisation:

    MFU = 6 · N_params · tokens/s / peak FLOP/s

with N_params the base model's parameters and the peak of the GPU's dense bf16 tensor cores (H200/H100 SXM:
989 TFLOP/s; ``--peak-tflops`` for others). The 6·N convention counts the weight-gradient matmuls a LoRA run
skips for frozen weights, so the useful-work MFU of LoRA is closer to 4·N/6·N of the printed figure; both are printed.
The goal, tunewise LoRA at >= 40% MFU (6·N) on a 1B-8B model, is printed as PASS or FAIL.

The model: ``--model`` names a Hugging Face directory on the GPU machine (which reaches no hub), or is left at the
embedded SmolLM2-135M, always there where tunewise is installed but far below 1B-8B. ``--random-init`` builds random
weights from the directory's config.json, so a config and a tokenizer are all that must reach the machine.

``--dry-run`` prints the plan (runs, model, shapes, MFU formula, estimated seconds per run and in total against
``--budget-s``) with neither CUDA nor weights, and exits non-zero when it does not fit.

    python bench/gpu_train.py --dry-run                             # the plan, on any machine
    python bench/gpu_train.py --model /models/Llama-3.2-1B          # ~3 minutes on one H200
    python bench/gpu_train.py --model cfg-and-tokenizer-dir --random-init --runs lora qlora --steps 30
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any, NamedTuple

sys.path.insert(0, str(Path(__file__).resolve().parent))

from gpu_plan import (
    EMBEDDED,
    GOAL_PARAMS,
    MFU_FORMULA,
    MFU_GOAL,
    UNKNOWN_PARAMS,
    check_budget,
    describe_model,
    emit,
    finish,
    gpu_spec,
    load_s,
    missing_modules,
    plan_lines,
    random_weights_copy,
    require_model,
    save,
    train_step_s,
)

ROOT = Path(__file__).resolve().parents[1]


class Run(NamedTuple):
    what: str
    requires: list[str]
    """Modules the run imports beyond tunewise's own."""
    assumed_mfu: float
    """Only for the time estimate of the plan (lower is more cautious)."""
    setup_s: float
    """Seconds beyond loading the model: quantizing, tokenising a dataset."""


RUNS = {
    "lora": Run("tunewise LoRA r16, all linear layers, precision auto (bf16)", ["torch", "peft"], 0.25, 5.0),
    "qlora": Run("tunewise QLoRA: the same with the base in 4-bit", ["bitsandbytes"], 0.15, 15.0),
    "trl": Run("TRL SFTTrainer with its defaults, the same LoRA", ["trl", "datasets"], 0.20, 20.0),
}


def plan(args: argparse.Namespace) -> dict[str, Any]:
    """What a run with these arguments would do and how long it would take, from the config alone."""
    gpu = gpu_spec(args.gpu_name or "H200", args.peak_tflops)
    model = describe_model(args.model)
    n = model["n_params"] or UNKNOWN_PARAMS
    tokens = args.batch_size * args.max_length  # at most: padding is not counted
    parts = []
    if args.random_init:
        what = "random bf16 weights from config.json, saved for the runs to load"
        parts.append(_part("random-weights", what, ["transformers"], load_s(n, factor=2)))
    for name in args.runs:
        run = RUNS[name]
        step = train_step_s(n, tokens, gpu["peak_tflops"], run.assumed_mfu)
        parts.append(_part(name, run.what, run.requires, load_s(n) + run.setup_s + args.steps * step))
    shapes = {"steps": args.steps, "batch_size": args.batch_size, "max_length": args.max_length}
    shapes |= {"examples": args.examples, "max_tokens_per_step": tokens}
    mfu = {"formula": MFU_FORMULA, "peak_tflops": gpu["peak_tflops"], "goal": f">= {MFU_GOAL:.0%} (6N), tunewise lora"}
    return finish(
        {"script": "gpu_train.py", "gpu": gpu, "model": model, "shapes": shapes, "mfu": mfu, "parts": parts},
        args.budget_s,
    )


def _part(name: str, what: str, requires: list[str], estimate_s: float) -> dict[str, Any]:
    return {
        "name": name,
        "what": what,
        "requires": requires,
        "missing_here": missing_modules(requires),
        "estimate_s": round(estimate_s, 1),
    }


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Every run of ``--runs`` on the GPU; one that fails or cannot import what it needs is recorded, not fatal."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    if not torch.cuda.is_available():
        raise SystemExit("no CUDA device: this benchmark is for GPU machines (use train_throughput.py on CPU)")
    from train_throughput import first_examples_project, run_trl, run_tunewise

    from tunewise.config import load_project
    from tunewise.models.embedded import resolve_model_path

    gpu = gpu_spec(args.gpu_name or torch.cuda.get_device_name(0), args.peak_tflops)
    peak = gpu["peak_tflops"] * 1e12
    with tempfile.TemporaryDirectory(prefix="tunewise-gpu-bench-") as tmp:
        model_path = resolve_model_path(args.model)
        if args.random_init:
            model_path = random_weights_copy(model_path, Path(tmp) / "random-model")
        with torch.device("meta"):
            n_params = sum(
                p.numel() for p in AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(model_path)).parameters()
            )
        results: dict[str, Any] = {
            "device": torch.cuda.get_device_name(0),
            "model": args.model,
            "random_init": args.random_init,
            "n_params": n_params,
            "peak_tflops": gpu["peak_tflops"],
            "steps": args.steps,
            "batch_size": args.batch_size,
            "max_length": args.max_length,
        }
        project = first_examples_project(load_project(args.project), args.examples, Path(tmp))
        runs = {
            "lora": lambda: run_tunewise(project, str(model_path), args, Path(tmp)),
            "qlora": lambda: run_qlora(project, str(model_path), args, Path(tmp)),
            "trl": lambda: run_trl(_examples(project, args.examples), model_path, args, Path(tmp)),
        }
        for name in args.runs:
            missing = missing_modules(RUNS[name].requires)
            if missing:
                results[name] = {"skipped": f"not importable here: {', '.join(missing)}"}
                print(f"{name}: skipped ({results[name]['skipped']})", flush=True)
                continue
            torch.cuda.reset_peak_memory_stats()
            try:
                numbers = runs[name]()
            except Exception as error:  # one run out of memory must not lose the others' numbers
                results[name] = {"error": f"{type(error).__name__}: {error}"}
                print(f"{name}: FAILED {results[name]['error']}", flush=True)
                torch.cuda.empty_cache()
                continue
            numbers["mfu_6n"] = 6 * n_params * numbers["tokens_per_s"] / peak
            numbers["mfu_4n"] = 4 * n_params * numbers["tokens_per_s"] / peak
            numbers["peak_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30
            results[name] = numbers
            print(
                f"{name}: {numbers['tokens_per_s']:.0f} tok/s, "
                f"MFU {numbers['mfu_6n']:.1%} (6N) / {numbers['mfu_4n']:.1%} (4N), "
                f"peak memory {numbers['peak_memory_gib']:.1f} GiB",
                flush=True,
            )
            save(args.json, results)
    if "tokens_per_s" in results.get("lora", {}) and "tokens_per_s" in results.get("trl", {}):
        results["ratio"] = results["lora"]["tokens_per_s"] / results["trl"]["tokens_per_s"]
        print(f"ratio tunewise / TRL: {results['ratio']:.2f}x")
    results["goal"] = goal(results.get("lora", {}).get("mfu_6n"), n_params)
    print(f"MFU goal: {results['goal']['verdict']}")
    return results


def run_qlora(project: Any, model: str, args: argparse.Namespace, out: Path) -> dict[str, Any]:
    """tunewise's loop with the LoRA and shapes of ``train_throughput.run_tunewise``, the base loaded in 4-bit."""
    from train_throughput import run_tunewise

    return run_tunewise(project, model, args, out, name="qlora", quantize_4bit=True)


def goal(mfu: float | None, n_params: int) -> dict[str, Any]:
    """The MFU goal's verdict: tunewise LoRA at >= 40% (6N), judged only on a 1B-8B model."""
    in_range = GOAL_PARAMS[0] <= n_params <= GOAL_PARAMS[1]
    if mfu is None:
        return {"pass": None, "model_in_goal_range": in_range, "verdict": "not measured (no lora result)"}
    passed = mfu >= MFU_GOAL
    verdict = f"{'PASS' if passed else 'FAIL'}: tunewise LoRA {mfu:.1%} MFU (6N), goal >= {MFU_GOAL:.0%}"
    if not in_range:
        verdict += f"; the model has {n_params / 1e9:.2f}B parameters, outside the goal's 1B-8B: not a test of it"
    return {"pass": passed, "mfu_6n": mfu, "model_in_goal_range": in_range, "verdict": verdict}


def _examples(project: Any, n: int) -> list[Any]:
    from tunewise.examples import load_examples

    return load_examples(project, project.split_path("train"), limit=n)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--project", type=Path, default=ROOT / "examples" / "receipts")
    parser.add_argument(
        "--model", default=EMBEDDED, help=f"HF model directory on this machine (default: the embedded {EMBEDDED})"
    )
    parser.add_argument("--random-init", action="store_true", help="random weights from the model's config.json")
    parser.add_argument("--runs", nargs="+", choices=list(RUNS), default=list(RUNS), help="default: all three")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-length", type=int, default=1024)
    parser.add_argument("--examples", type=int, default=400)
    parser.add_argument("--gpu-name", default=None, help="peak TFLOP/s of this GPU (default: the one found; H200)")
    parser.add_argument("--peak-tflops", type=float, default=None, help="dense bf16 peak for a GPU not in the table")
    parser.add_argument("--budget-s", type=float, default=540.0, help="refuse a plan longer than this (default 540)")
    parser.add_argument("--dry-run", action="store_true", help="print the plan and exit: no CUDA, no weights")
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers (or the plan) here")
    args = parser.parse_args()

    the_plan = plan(args)
    if args.dry_run:
        emit(the_plan)
        save(args.json, the_plan)
        check_budget(the_plan)
        return
    print("\n".join(plan_lines(the_plan)), file=sys.stderr, flush=True)
    check_budget(the_plan)
    require_model(args.model, random_init=args.random_init)
    results = measure(args)
    print(json.dumps(results, indent=2))
    save(args.json, results)
    if any(isinstance(value, dict) and "error" in value for value in results.values()):
        raise SystemExit("some runs failed (see 'error' above)")


if __name__ == "__main__":
    main()
