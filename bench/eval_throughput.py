"""Throughput of LocalBackend's batched generation against naive one-by-one ``model.generate()``.

Both run greedy decoding with the same model object, the same prompts (an instruction + a receipt's OCR text) and
the same ``max_new_tokens``, in the same process, after a warm-up. Prints examples/s for each, the ratio, and how
many outputs agree (batched left-padded decoding should reproduce one-by-one decoding).

    flock /tmp/tunewise-cpu.lock python bench/eval_throughput.py            # ~3 minutes on 2 CPU cores
    python bench/eval_throughput.py --n 64 --batch-size 16 --model path/to/hf-dir
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from tunewise.models.base import GenerationConfig
from tunewise.models.local import LocalBackend

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT / "examples" / "receipts" / "data" / "dev.jsonl"
INSTRUCTION = (
    'Extract the key fields of this receipt. Answer with one JSON object with the keys "company", "date", '
    '"address" and "total".'
)


def load_conversations(path: Path, n: int) -> list[list[dict[str, str]]]:
    """The first ``n`` receipts of a ``{"text": ...}`` JSONL file as system + user conversations."""
    conversations = []
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if len(conversations) == n:
                break
            if line.strip():
                text = json.loads(line)["text"]
                conversations.append([{"role": "system", "content": INSTRUCTION}, {"role": "user", "content": text}])
    if len(conversations) < n:
        raise SystemExit(f"{path}: only {len(conversations)} rows, --n {n} asked")
    return conversations


def naive_generate(
    model: Any, tokenizer: Any, conversations: list[list[dict[str, str]]], max_new_tokens: int
) -> list[str]:
    """What one writes first: one ``model.generate()`` per prompt."""
    import torch

    texts = []
    for conversation in conversations:
        rendered = tokenizer.apply_chat_template(conversation, add_generation_prompt=True, tokenize=False)
        ids = tokenizer(rendered, add_special_tokens=False, return_tensors="pt")["input_ids"].to(model.device)
        with torch.inference_mode():
            out = model.generate(
                ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id,
            )
        texts.append(tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True))
    return texts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=32, help="prompts (default 32)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--model", default="smollm2-135m", help="embedded model name or HF directory")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="JSONL with a 'text' field")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's choice)")
    args = parser.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    conversations = load_conversations(args.data, args.n)
    backend = LocalBackend(args.model)
    model, tokenizer = backend.load()
    config = GenerationConfig(max_new_tokens=args.max_new_tokens, batch_size=args.batch_size)
    # Warm-up: first calls pay for allocator growth and kernel selection.
    backend.generate(conversations[:2], GenerationConfig(max_new_tokens=4, batch_size=2))
    naive_generate(model, tokenizer, conversations[:1], 4)

    start = time.perf_counter()
    batched = backend.generate(conversations, config)
    batched_s = time.perf_counter() - start
    start = time.perf_counter()
    naive = naive_generate(model, tokenizer, conversations, args.max_new_tokens)
    naive_s = time.perf_counter() - start
    # The same with one new token: the prompt-processing (prefill) part of each, which batching cannot shrink.
    start = time.perf_counter()
    backend.generate(conversations, GenerationConfig(max_new_tokens=1, batch_size=args.batch_size))
    batched_prefill_s = time.perf_counter() - start
    start = time.perf_counter()
    naive_generate(model, tokenizer, conversations, 1)
    naive_prefill_s = time.perf_counter() - start

    prompt_tokens = sum(c.prompt_tokens for c in batched)
    new_tokens = sum(c.completion_tokens for c in batched)
    agree = sum(b.text == t for b, t in zip(batched, naive, strict=True))
    print(f"model {args.model} on {model.device} ({model.dtype}), torch threads {torch.get_num_threads()}")
    print(
        f"{args.n} prompts, {prompt_tokens / args.n:.0f} prompt tokens on average, {new_tokens} new tokens, "
        f"max_new_tokens {args.max_new_tokens}"
    )
    print(f"naive one-by-one:       {args.n / naive_s:6.3f} examples/s  ({naive_s:6.1f} s)")
    print(f"batched (batch {args.batch_size:>3}):   {args.n / batched_s:6.3f} examples/s  ({batched_s:6.1f} s)")
    print(f"speed-up:               {naive_s / batched_s:6.2f}x")
    print(f"prefill only (1 token): naive {naive_prefill_s:.1f} s, batched {batched_prefill_s:.1f} s")
    naive_decode_s, batched_decode_s = naive_s - naive_prefill_s, batched_s - batched_prefill_s
    print(
        f"decode part:            naive {naive_decode_s:.1f} s, batched {batched_decode_s:.1f} s, "
        f"speed-up {naive_decode_s / max(batched_decode_s, 1e-9):.2f}x"
    )
    print(f"identical outputs:      {agree}/{args.n}")


if __name__ == "__main__":
    main()
