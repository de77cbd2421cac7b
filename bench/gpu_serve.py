"""Multi-adapter serving on a GPU: ``tunewise serve`` with the vLLM engine, a base and N LoRA adapters, under load.

Writes N random LoRA adapters (PEFT, ``init_lora_weights=False``, r ``--rank``, all linear layers) into a temporary
copy of the project, starts ``tunewise serve`` with ``engine: vllm`` in a child process (vLLM serves every adapter
as a LoRA module of one engine), and sends streamed receipts requests with the ``openai`` async client at each
concurrency: once all to the base, once spread round-robin over the base and every adapter. Prints tokens/s, TTFT
and latency per row, and multi-adapter / base-only tokens/s (the cost of mixing adapters in one batch).

``--dry-run`` prints the ``vllm serve`` command line the engine would run for those adapters (written as
configs only, no weights) and exits: it needs neither vLLM nor a GPU.

    python bench/gpu_serve.py --dry-run                  # seconds, on any machine
    python bench/gpu_serve.py                            # ~4 minutes on one H200 (vLLM starts in ~1-2 of them)
    python bench/gpu_serve.py --adapters 16 --concurrency 1 64 256 --requests 512 --json out.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shlex
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

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


def launch_plan(project: Any, parallel: int) -> Any:
    """The :class:`VllmPlan` ``tunewise serve --engine vllm`` builds for the project's models (nothing started)."""
    from tunewise.serve.catalog import scan
    from tunewise.serve.engines.vllm import VllmDriver

    spec = project.spec.serve.model_copy(update={"engine": "vllm", "parallel": parallel})
    return VllmDriver(spec, executable=("vllm",)).plan(scan(project))


def adapter_names(n: int) -> list[str]:
    return [f"lora-{i:02d}" for i in range(n)]


def dry_run(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    project = copy_project(args.project, tmp / "project")
    add_adapters(project, adapter_names(args.adapters), rank=args.rank, weights=False)
    plan = launch_plan(project, max(args.concurrency))
    argv = plan.argv(8000)
    print(shlex.join(argv))
    return {"argv": argv, "adapters": [name for name, _ in plan.adapters], "max_lora_rank": plan.max_lora_rank}


def measure(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    from tunewise.examples import load_examples

    project = copy_project(args.project, tmp / "project")
    names = adapter_names(args.adapters)
    add_adapters(project, names, rank=args.rank)
    examples = load_examples(project, project.split_path("dev"))
    pool = [list(e.messages) for e in examples]
    prompts = [pool[i % len(pool)] for i in range(args.requests)]
    parallel = max(args.concurrency)
    results: dict[str, Any] = {
        "adapters": args.adapters,
        "rank": args.rank,
        "requests": args.requests,
        "max_tokens": args.max_tokens,
        "parallel": parallel,
        "rows": [],
    }
    print(f"starting tunewise serve --engine vllm with {args.adapters} adapters...", flush=True)
    with tunewise_server(project.root, engine="vllm", parallel=parallel) as url:
        asyncio.run(run_load(url, [BASE, *names], pool[:8], 8, 8, {}))  # warm-up: every adapter loaded on the GPU
        print(HEADER)
        for concurrency in args.concurrency:
            for target, models in (("base only", [BASE]), (f"base + {args.adapters} adapters", [BASE, *names])):
                outcomes, wall = asyncio.run(run_load(url, models, prompts, concurrency, args.max_tokens, {}))
                row = {"target": target, "clients": concurrency, **summarize(outcomes, wall)}
                results["rows"].append(row)
                print(_format_row(row), flush=True)
    rows = results["rows"]
    results["ratios"] = {
        f"multi-adapter/base-only@{base['clients']}": round(mixed["tokens_per_s"] / base["tokens_per_s"], 3)
        for base, mixed in zip(rows[::2], rows[1::2], strict=True)
    }
    print()
    for key, value in results["ratios"].items():
        print(f"{key:<40}{value:>7.3f}")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--project", type=Path, default=ROOT / "examples" / "receipts", help="copied, never written")
    parser.add_argument("--adapters", type=int, default=8, help="LoRA adapters served beside the base (default 8)")
    parser.add_argument("--rank", type=int, default=16)
    parser.add_argument("--requests", type=int, default=256, help="requests per row and concurrency level")
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 64], help="clients at once (default 1 64)")
    parser.add_argument("--dry-run", action="store_true", help="print the vLLM command line and exit")
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers (or the plan) here")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="tunewise-gpu-serve-") as tmp:
        results = dry_run(args, Path(tmp)) if args.dry_run else measure(args, Path(tmp))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
