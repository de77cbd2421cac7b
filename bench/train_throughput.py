"""Training throughput of ``tunewise train`` against TRL's ``SFTTrainer`` with its default settings.

Same model (the embedded SmolLM2-135M-Instruct unless ``--model``), same receipts, same LoRA (r 16, alpha 32,
dropout 0.05, all linear layers), same number of optimizer steps, micro-batch and max length, in the same process.
Both count tokens the same way (the attention mask: real tokens, padding excluded) over the optimizer steps only
(model loading and tokenisation are not timed). TRL keeps its defaults (bf16, gradient checkpointing, ...) except
what is needed to run the same shapes, and with checkpoint saving and reporting off so they are not timed.

    flock /tmp/tunewise-cpu.lock python bench/train_throughput.py              # ~5 minutes on 2 CPU cores
    python bench/train_throughput.py --steps 20 --batch-size 8 --max-length 1024 --model path/to/hf-dir
"""

from __future__ import annotations

import argparse
import json
import os
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


def run_tunewise(project: Project, model: str, args: argparse.Namespace, out: Path) -> dict[str, Any]:
    """tunewise's loop with its defaults (precision auto, length grouping), eval and tracking off."""
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
    )
    result = train(project, spec, out_dir=out / "tunewise", run_name="bench-tunewise", track=False, progress=False)
    step_time = result.train_tokens / result.tokens_per_s if result.tokens_per_s else float("nan")
    return {"tokens": result.train_tokens, "seconds": step_time, "tokens_per_s": result.tokens_per_s}


def run_trl(examples: list[Example], model_path: Path, args: argparse.Namespace, out: Path) -> dict[str, Any]:
    """TRL SFTTrainer on prompt/completion records (completion-only loss), defaults otherwise."""
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
    )
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    model = AutoModelForCausalLM.from_pretrained(model_path)
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
    }


def first_examples_project(project: Project, n: int, tmp: Path) -> Project:
    """The same project with a train file of its first ``n`` rows, so both trainers draw from the same examples."""
    lines = project.split_path("train").read_text(encoding="utf-8").splitlines(keepends=True)
    (tmp / "train.jsonl").write_text("".join(lines[:n]), encoding="utf-8")
    raw = project.spec.model_dump(mode="json", exclude_none=True)
    raw["data"]["train"] = str(tmp / "train.jsonl")
    return project_from_dict(raw, project.root)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", type=Path, default=ROOT / "examples" / "receipts")
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--examples", type=int, default=64, help="Training examples both trainers draw from.")
    parser.add_argument("--only", choices=["tunewise", "trl"], default=None)
    parser.add_argument("--json", type=Path, default=None, help="Also write the numbers here.")
    args = parser.parse_args()

    import torch

    from tunewise.models.embedded import resolve_model_path

    torch.manual_seed(0)
    full = load_project(args.project)
    model_path = resolve_model_path(args.model)
    results: dict[str, Any] = {
        "steps": args.steps,
        "batch_size": args.batch_size,
        "max_length": args.max_length,
        "threads": torch.get_num_threads(),
        "model": args.model,
    }
    with tempfile.TemporaryDirectory(prefix="tunewise-bench-") as tmp:
        project = first_examples_project(full, args.examples, Path(tmp))
        if args.only in (None, "tunewise"):
            started = time.perf_counter()
            results["tunewise"] = run_tunewise(project, str(model_path), args, Path(tmp))
            results["tunewise"]["wall_s"] = time.perf_counter() - started
            print(
                f"tunewise: {results['tunewise']['tokens_per_s']:.1f} tok/s ({results['tunewise']['tokens']} tokens)",
                flush=True,
            )
        if args.only in (None, "trl"):
            examples = load_examples(project, project.split_path("train"), limit=args.examples)
            started = time.perf_counter()
            results["trl"] = run_trl(examples, model_path, args, Path(tmp))
            results["trl"]["wall_s"] = time.perf_counter() - started
            print(
                f"trl SFTTrainer: {results['trl']['tokens_per_s']:.1f} tok/s ({results['trl']['tokens']} tokens)",
                flush=True,
            )
    if "tunewise" in results and "trl" in results:
        results["ratio"] = results["tunewise"]["tokens_per_s"] / results["trl"]["tokens_per_s"]
        print(f"ratio tunewise / TRL: {results['ratio']:.2f}x (target >= 1.5x on CPU)")
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
