"""Multi-adapter serving on a GPU: ``tunewise serve`` with the vLLM engine, a base and N LoRA adapters, under load.

Writes N random LoRA adapters (PEFT, ``init_lora_weights=False``, r ``--rank``, all linear layers) into a temporary
copy of the project, starts ``tunewise serve`` with ``engine: vllm`` in a child process (vLLM serves every adapter
as a LoRA module of one engine), and sends streamed receipts requests with the ``openai`` async client at each
concurrency: once all to the base, once spread round-robin over the base and every adapter. Prints tokens/s, TTFT
and latency per row, and multi-adapter / base-only tokens/s (the cost of mixing adapters in one batch).

The base: ``--model`` names a Hugging Face directory on the GPU machine (which reaches no hub), or is left at the
embedded SmolLM2-135M, far below the 1B-8B a GPU is for; ``--random-init`` builds its weights from config.json.
Without vLLM or CUDA the run is recorded as skipped.

``--dry-run`` prints the plan (the ``vllm serve`` command line for those adapters, written as configs only, the
rows, estimated seconds per part and in total against ``--budget-s``) and exits, non-zero when it does not fit: it
needs neither vLLM, a GPU nor weights.

    python bench/gpu_serve.py --dry-run                  # seconds, on any machine
    python bench/gpu_serve.py                            # ~4 minutes on one H200 (vLLM starts in ~1-2 of them)
    python bench/gpu_serve.py --adapters 16 --concurrency 1 64 256 --requests 512 --json out.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from gpu_plan import (
    UNKNOWN_PARAMS,
    check_budget,
    decode_step_s,
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
)
from serve_load import (
    BASE,
    HEADER,
    ROOT,
    _format_row,
    add_adapters,
    copy_project,
    run_load,
    summarize,
    tunewise_server,
)

VLLM_START_S = 120.0
"""vLLM's start (engine, CUDA graphs) beside loading the weights, as seen on H100-class machines."""
MIXED_SLOWDOWN = 1.3
"""Rows spread over adapters are assumed this much slower than base-only ones, for the estimate."""


def launch_plan(project: Any, parallel: int) -> Any:
    """The :class:`VllmPlan` ``tunewise serve --engine vllm`` builds for the project's models (nothing started)."""
    from tunewise.serve.catalog import scan
    from tunewise.serve.engines.vllm import VllmDriver

    spec = project.spec.serve.model_copy(update={"engine": "vllm", "parallel": parallel})
    return VllmDriver(spec, executable=("vllm",)).plan(scan(project))


def adapter_names(n: int) -> list[str]:
    return [f"lora-{i:02d}" for i in range(n)]


def with_base(project: Any, model: str) -> Any:
    """The (copied) project with ``train.base_model``, the base the server serves, set to ``model``."""
    if model == BASE:
        return project
    import yaml

    from tunewise.config import load_project

    raw = yaml.safe_load(project.spec_file.read_text(encoding="utf-8"))
    raw.setdefault("train", {})["base_model"] = model
    project.spec_file.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return load_project(project.spec_file)


def plan(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    """The parts of a run with their estimated seconds, and the vLLM command line when the model is here."""
    gpu = gpu_spec(args.gpu_name or "H200", None)
    model = describe_model(args.model)
    n = model["n_params"] or UNKNOWN_PARAMS
    step = decode_step_s(n, gpu["hbm_tbps"])
    requires = ["vllm", "openai"]
    parts = [
        _part(
            "adapters",
            f"{args.adapters} random LoRA adapters r{args.rank} (base loaded on CPU, fp32)",
            ["peft"],
            load_s(n, factor=2) + args.adapters,
        ),
        _part(
            "vllm-start",
            "tunewise serve --engine vllm, one warm-up request per model",
            requires,
            VLLM_START_S + load_s(n) + args.max_tokens * step,
        ),
    ]
    for clients in args.concurrency:
        rounds = math.ceil(args.requests / clients)
        seconds = rounds * args.max_tokens * step * (1 + MIXED_SLOWDOWN)
        parts.append(
            _part(
                f"load@{clients}",
                f"{args.requests} requests x {args.max_tokens} tokens, base only, then base + {args.adapters} adapters",
                requires,
                seconds,
            )
        )
    serve: dict[str, Any] = {"adapters": args.adapters, "rank": args.rank, "requests": args.requests}
    serve |= {"max_tokens": args.max_tokens, "concurrency": args.concurrency}
    if _plannable_here(args.model, model["found_here"]):
        project = with_base(copy_project(args.project, tmp / "project"), args.model)
        add_adapters(project, adapter_names(args.adapters), rank=args.rank, base=args.model, weights=False)
        launch = launch_plan(project, max(args.concurrency))
        vllm = {"argv": launch.argv(8000), "max_lora_rank": launch.max_lora_rank}
    else:
        vllm = {"argv": None}  # planned where the model is (or once the embedded GGUF was converted)
    return finish(
        {"script": "gpu_serve.py", "gpu": gpu, "model": model, "shapes": serve, "vllm": vllm, "parts": parts},
        args.budget_s,
    )


def _plannable_here(model: str, found_here: bool) -> bool:
    """Whether the launch can be planned here without loading weights (the embedded GGUF converted already)."""
    if model != BASE:
        return found_here
    from tunewise.io.cache import cache_root

    return any((d / "config.json").is_file() for d in (cache_root() / "models").glob(f"{BASE}-*"))


def _part(name: str, what: str, requires: list[str], estimate_s: float) -> dict[str, Any]:
    return {
        "name": name,
        "what": what,
        "requires": requires,
        "missing_here": missing_modules(requires),
        "estimate_s": round(estimate_s, 1),
    }


def measure(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    """The rows under load, or why they were skipped (no vLLM, no CUDA)."""
    import torch

    missing = missing_modules(["vllm", "openai"])
    if missing or not torch.cuda.is_available():
        reason = f"not importable here: {', '.join(missing)}" if missing else "no CUDA device"
        print(f"gpu_serve: skipped ({reason})", flush=True)
        return {"vllm": {"skipped": reason}}
    from tunewise.examples import load_examples

    model = args.model
    if args.random_init:
        model = str(random_weights_copy(Path(model).expanduser(), tmp / "random-model"))
    project = with_base(copy_project(args.project, tmp / "project"), model)
    names = adapter_names(args.adapters)
    add_adapters(project, names, rank=args.rank, base=model)
    examples = load_examples(project, project.split_path("dev"))
    pool = [list(e.messages) for e in examples]
    prompts = [pool[i % len(pool)] for i in range(args.requests)]
    parallel = max(args.concurrency)
    results: dict[str, Any] = {
        "model": args.model,
        "adapters": args.adapters,
        "rank": args.rank,
        "requests": args.requests,
        "max_tokens": args.max_tokens,
        "parallel": parallel,
        "rows": [],
    }
    base = project.spec.train.base_model
    print(f"starting tunewise serve --engine vllm with {args.adapters} adapters...", flush=True)
    with tunewise_server(project.root, engine="vllm", parallel=parallel) as url:
        asyncio.run(run_load(url, [base, *names], pool[:8], 8, 8, {}))  # warm-up: every adapter loaded on the GPU
        print(HEADER)
        for concurrency in args.concurrency:
            for target, models in (("base only", [base]), (f"base + {args.adapters} adapters", [base, *names])):
                outcomes, wall = asyncio.run(run_load(url, models, prompts, concurrency, args.max_tokens, {}))
                row = {"target": target, "clients": concurrency, **summarize(outcomes, wall)}
                results["rows"].append(row)
                print(_format_row(row), flush=True)
                save(args.json, results)
    rows = results["rows"]
    results["ratios"] = {
        f"multi-adapter/base-only@{base_row['clients']}": round(mixed["tokens_per_s"] / base_row["tokens_per_s"], 3)
        for base_row, mixed in zip(rows[::2], rows[1::2], strict=True)
    }
    print()
    for key, value in results["ratios"].items():
        print(f"{key:<40}{value:>7.3f}")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--project", type=Path, default=ROOT / "examples" / "receipts", help="copied, never written")
    parser.add_argument("--model", default=BASE, help=f"HF model directory to serve (default: the embedded {BASE})")
    parser.add_argument("--random-init", action="store_true", help="random weights from the model's config.json")
    parser.add_argument("--adapters", type=int, default=8, help="LoRA adapters served beside the base (default 8)")
    parser.add_argument("--rank", type=int, default=16)
    parser.add_argument("--requests", type=int, default=256, help="requests per row and concurrency level")
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 64], help="clients at once (default 1 64)")
    parser.add_argument("--gpu-name", default=None, help="memory bandwidth of this GPU for the estimates (H200)")
    parser.add_argument("--budget-s", type=float, default=540.0, help="refuse a plan longer than this (default 540)")
    parser.add_argument("--dry-run", action="store_true", help="print the plan and the vLLM command line, and exit")
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers (or the plan) here")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="tunewise-gpu-serve-") as tmp:
        the_plan = plan(args, Path(tmp) / "plan")
        if args.dry_run:
            emit(the_plan)
            save(args.json, the_plan)
            check_budget(the_plan)
            return
        print("\n".join(plan_lines(the_plan)), file=sys.stderr, flush=True)
        check_budget(the_plan)
        require_model(args.model, random_init=args.random_init)
        results = measure(args, Path(tmp))
    print(json.dumps(results, indent=2))
    save(args.json, results)


if __name__ == "__main__":
    main()
