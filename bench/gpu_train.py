"""Training tokens/s and MFU on a GPU machine (prepared for when one is lent; it needs CUDA).

Runs the same comparison as ``train_throughput.py`` (tunewise's loop vs TRL ``SFTTrainer`` defaults, same model,
receipts, LoRA, steps, batch and max length) at GPU-sized shapes, then reports model FLOPs utilisation:

    MFU = 6 · N_params · tokens/s / peak FLOP/s

with N_params the base model's parameters and the peak of the GPU's dense bf16 tensor cores (H200/H100 SXM:
989 TFLOP/s; ``--peak-tflops`` for others). The 6·N convention counts the weight-gradient matmuls a LoRA run
skips for frozen weights, so the useful-work MFU of LoRA is closer to 4·N/6·N of the printed figure; both are printed.

    python bench/gpu_train.py                                  # ~2 minutes on one H200
    python bench/gpu_train.py --steps 30 --batch-size 32 --max-length 1024 --only tunewise
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from train_throughput import ROOT, first_examples_project, run_trl, run_tunewise

PEAK_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "A10": 125.0, "L4": 121.0}


def peak_for(device_name: str, override: float | None) -> float:
    if override is not None:
        return override
    for key, value in PEAK_TFLOPS.items():
        if key in device_name:
            return value
    raise SystemExit(f"unknown GPU {device_name!r}: pass --peak-tflops (dense bf16)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", type=Path, default=ROOT / "examples" / "receipts")
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-length", type=int, default=1024)
    parser.add_argument("--examples", type=int, default=400)
    parser.add_argument("--peak-tflops", type=float, default=None)
    parser.add_argument("--only", choices=["tunewise", "trl"], default=None)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from tunewise.config import load_project
    from tunewise.models.embedded import resolve_model_path

    if not torch.cuda.is_available():
        raise SystemExit("no CUDA device: this benchmark is for GPU machines (use train_throughput.py on CPU)")
    device_name = torch.cuda.get_device_name(0)
    peak = peak_for(device_name, args.peak_tflops) * 1e12
    model_path = resolve_model_path(args.model)
    with torch.device("meta"):
        n_params = sum(
            p.numel() for p in AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(model_path)).parameters()
        )
    results: dict[str, Any] = {
        "device": device_name,
        "n_params": n_params,
        "peak_tflops": peak / 1e12,
        "steps": args.steps,
        "batch_size": args.batch_size,
        "max_length": args.max_length,
    }
    with tempfile.TemporaryDirectory(prefix="tunewise-gpu-bench-") as tmp:
        project = first_examples_project(load_project(args.project), args.examples, Path(tmp))
        runs = {
            "tunewise": lambda: run_tunewise(project, str(model_path), args, Path(tmp)),
            "trl": lambda: run_trl(_examples(project, args.examples), model_path, args, Path(tmp)),
        }
        for name, run in runs.items():
            if args.only not in (None, name):
                continue
            torch.cuda.reset_peak_memory_stats()
            numbers = run()
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
    if "tunewise" in results and "trl" in results:
        results["ratio"] = results["tunewise"]["tokens_per_s"] / results["trl"]["tokens_per_s"]
        print(f"ratio tunewise / TRL: {results['ratio']:.2f}x")
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


def _examples(project: Any, n: int) -> list[Any]:
    from tunewise.examples import load_examples

    return load_examples(project, project.split_path("train"), limit=n)


if __name__ == "__main__":
    main()
