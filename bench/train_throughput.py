"""Training throughput of ``tunewise train`` against TRL's ``SFTTrainer``, with its defaults and tuned.

Same model (the embedded SmolLM2-135M-Instruct unless ``--model``), same receipts, same LoRA (r 16, alpha 32,
dropout 0.05, all linear layers), same number of optimizer steps, micro-batch and max length, each trainer in its own
process (so the peak resident memory printed is its own), one after the other in one run. All count tokens the same
way (the attention mask: real tokens, padding excluded) over the optimizer steps only (model loading and
tokenisation are not timed). TRL runs three ways: its defaults (bf16 autocast, gradient checkpointing, ...), and
tuned as a careful user would on a CPU (the base in bf16, no gradient checkpointing) with length-grouped batches or
with packing (padding-free). Checkpoint saving and reporting are off everywhere. The levers behind the ratio, and
the ones that did not pay: docs/performance.md.

    python bench/train_throughput.py              # ~10 minutes on 2 CPU cores; run nothing else meanwhile
    python bench/train_throughput.py --runs tunewise trl-grouped --steps 20 --batch-size 8 --max-length 1024
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

from tunewise.config import Project, load_project, project_from_dict
from tunewise.examples import load_examples, target_text
from tunewise.records import Example

ROOT = Path(__file__).resolve().parents[1]
LORA = {"rank": 16, "alpha": 32, "dropout": 0.05}


def run_tunewise(
    project: Project, model: str, args: argparse.Namespace, out: Path, *, name: str = "tunewise", **overrides: Any
) -> dict[str, Any]:
    """tunewise's loop with its defaults (precision auto, length grouping), eval and tracking off; ``overrides``
    change the TrainSpec (e.g. ``quantize_4bit=True``)."""
    from tunewise.config import TrainSpec
    from tunewise.train import train

    spec = TrainSpec(
        base_model=model,
        rank=LORA["rank"],
        alpha=LORA["alpha"],
        dropout=LORA["dropout"],
        max_steps=args.steps,
        micro_batch_size=args.batch_size,
        gradient_accumulation=1,
        max_length=args.max_length,
        overlength="truncate",
        eval_examples=0,
        checkpoint_every=10_000,
        seed=0,
        **overrides,
    )
    result = train(project, spec, out_dir=out / name, run_name=f"bench-{name}", track=False, progress=False)
    step_time = result.train_tokens / result.tokens_per_s if result.tokens_per_s else float("nan")
    return {"tokens": result.train_tokens, "seconds": step_time, "tokens_per_s": result.tokens_per_s}


def run_trl(
    examples: list[Example], model_path: Path, args: argparse.Namespace, out: Path, *, tuned: str | None = None
) -> dict[str, Any]:
    """TRL SFTTrainer on prompt/completion records (completion-only loss).

    ``tuned=None`` keeps TRL's defaults. ``tuned`` set is TRL as a careful user configures it on a CPU: the base
    loaded in bf16, no gradient checkpointing (memory is not the constraint here, time is), and either
    ``"grouped"`` (length-grouped batches, as tunewise) or ``"packed"`` (best-fit-decreasing packing into
    ``max_length`` rows, padding-free: transformers turns the reset position ids into a block-diagonal mask for SDPA;
    plain ``padding_free`` without packing refuses a ``max_length``).
    """
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import SFTConfig, SFTTrainer

    rows = [{"prompt": e.messages, "completion": [{"role": "assistant", "content": target_text(e)}]} for e in examples]
    tokens_seen: list[float] = []

    class CountTokens(TrainerCallback):
        def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, float] | None = None, **kw: Any) -> None:
            if logs and "num_tokens" in logs:
                tokens_seen.append(logs["num_tokens"])

    config = SFTConfig(
        output_dir=str(out / "trl"),
        max_steps=args.steps,
        per_device_train_batch_size=args.batch_size,
        gradient_accumulation_steps=1,
        max_length=args.max_length,
        save_strategy="no",
        report_to="none",
        logging_steps=1,
        seed=0,
        # TRL defaults to bf16 even without a GPU, which transformers only accepts together with use_cpu.
        use_cpu=not torch.cuda.is_available(),
        **_tuned_settings(tuned),
    )
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    model = AutoModelForCausalLM.from_pretrained(model_path, **({"dtype": torch.bfloat16} if tuned else {}))
    peft_config = LoraConfig(
        r=LORA["rank"],
        lora_alpha=LORA["alpha"],
        lora_dropout=LORA["dropout"],
        target_modules="all-linear",
        task_type="CAUSAL_LM",
    )
    trainer = SFTTrainer(
        model=model,
        args=config,
        train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
        peft_config=peft_config,
        callbacks=[CountTokens()],
    )
    output = trainer.train()
    seconds = float(output.metrics["train_runtime"])
    tokens = int(tokens_seen[-1]) if tokens_seen else 0
    return {
        "tokens": tokens,
        "seconds": seconds,
        "tokens_per_s": tokens / seconds if seconds else float("nan"),
        "bf16": config.bf16,
        "gradient_checkpointing": config.gradient_checkpointing,
        "padding_free": config.padding_free,
        "sampling": config.train_sampling_strategy,
    }


def _tuned_settings(tuned: str | None) -> dict[str, Any]:
    if tuned is None:
        return {}
    settings: dict[str, Any] = {"bf16": True, "gradient_checkpointing": False}
    if tuned == "grouped":
        settings["train_sampling_strategy"] = "group_by_length"
    elif tuned == "packed":
        settings["packing"] = True  # best-fit-decreasing packing, which TRL runs padding-free
    else:
        raise ValueError(f"unknown TRL tuning {tuned!r}")
    return settings


def first_examples_project(project: Project, n: int, tmp: Path) -> Project:
    """The same project rooted in ``tmp`` (its adapters land there, not in the example) with a train file of its
    first ``n`` rows, so every trainer draws from the same examples."""
    lines = project.split_path("train").read_text(encoding="utf-8").splitlines(keepends=True)
    (tmp / "train.jsonl").write_text("".join(lines[:n]), encoding="utf-8")
    raw = project.spec.model_dump(mode="json", exclude_none=True)
    for section, key in (("data", "dev"), ("data", "test"), ("data", "documents"), ("task", "output_schema_file")):
        if key in raw[section]:
            raw[section][key] = str(project.path(raw[section][key]))
    raw["data"]["train"] = str(tmp / "train.jsonl")
    return project_from_dict(raw, tmp)


RUNS = {
    "tunewise": "tunewise train with its defaults",
    "trl": "TRL SFTTrainer, defaults",
    "trl-grouped": "TRL tuned: bf16 base, no gradient checkpointing, length-grouped batches",
    "trl-packed": "TRL tuned: bf16 base, no gradient checkpointing, packed padding-free rows",
}


def run_one(name: str, args: argparse.Namespace) -> dict[str, Any]:
    """One trainer in this process (so its peak memory is its own)."""
    import resource

    import torch

    from tunewise.models.embedded import resolve_model_path

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.interop_threads:
        torch.set_interop_threads(args.interop_threads)  # before any parallel work, or torch refuses
    torch.manual_seed(0)
    full = load_project(args.project)
    model_path = resolve_model_path(args.model)
    with tempfile.TemporaryDirectory(prefix="tunewise-bench-") as tmp:
        project = first_examples_project(full, args.examples, Path(tmp))
        started = time.perf_counter()
        if name == "tunewise":
            result = run_tunewise(project, str(model_path), args, Path(tmp))
        else:
            examples = load_examples(project, project.split_path("train"), limit=args.examples)
            tuned = name.removeprefix("trl-").replace("-", "_") if name != "trl" else None
            result = run_trl(examples, model_path, args, Path(tmp), tuned=tuned)
        result["wall_s"] = time.perf_counter() - started
    result["peak_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6  # KiB on Linux
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", type=Path, default=ROOT / "examples" / "receipts")
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--examples", type=int, default=64, help="Training examples every trainer draws from.")
    parser.add_argument("--runs", nargs="+", choices=list(RUNS), default=list(RUNS))
    parser.add_argument("--json", type=Path, default=None, help="Also write the numbers here.")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads in every run.")
    parser.add_argument("--interop-threads", type=int, default=None, help="torch.set_interop_threads in every run.")
    parser.add_argument("--worker", choices=list(RUNS), default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(WORKER_MARK + json.dumps(run_one(args.worker, args)), flush=True)
        return

    import torch

    results: dict[str, Any] = {
        "steps": args.steps,
        "batch_size": args.batch_size,
        "max_length": args.max_length,
        "examples": args.examples,
        "threads": args.threads or torch.get_num_threads(),
        "interop_threads": args.interop_threads or torch.get_num_interop_threads(),
        "model": args.model,
    }
    for name in args.runs:
        results[name] = _in_subprocess(name)
        print(
            f"{name:17s} {results[name]['tokens_per_s']:7.1f} tok/s, peak RSS {results[name]['peak_rss_gb']:.2f} GB"
            f"  ({RUNS[name]})",
            flush=True,
        )
    if "tunewise" in results:
        peers = [name for name in args.runs if name.startswith("trl")]
        for name in peers:
            results[f"ratio_vs_{name}"] = results["tunewise"]["tokens_per_s"] / results[name]["tokens_per_s"]
            print(f"tunewise / {name}: {results[f'ratio_vs_{name}']:.2f}x")
        if peers:
            best = max(peers, key=lambda name: results[name]["tokens_per_s"])
            ratio = results[f"ratio_vs_{best}"]
            print(f"tunewise / fastest TRL ({best}): {ratio:.2f}x (goal >= 2x)")
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


WORKER_MARK = "BENCH-RESULT "


def _in_subprocess(name: str) -> dict[str, Any]:
    argv = [sys.executable, __file__, *sys.argv[1:], "--worker", name]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith(WORKER_MARK)]
    if done.returncode != 0 or not lines:
        raise SystemExit(f"{name} failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(lines[-1].removeprefix(WORKER_MARK))


if __name__ == "__main__":
    main()
