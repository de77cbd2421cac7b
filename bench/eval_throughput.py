"""Throughput of LocalBackend's batched generation and of the llama.cpp engine against one-by-one ``model.generate()``.

All run greedy decoding on the same prompts (an instruction + a receipt's OCR text) with the same
``max_new_tokens``, in the same process, after a warm-up: naive one-by-one transformers generation, the transformers
backend's batches, and LlamaCppBackend (``engine: llamacpp``: llama-server on the model's GGUF, ``--parallel``
requests in flight, started before the clock runs). Prints examples/s for each, the ratios against one-by-one
generation, and how many outputs agree with it (the embedded model's GGUF is Q4_1: llama.cpp's quantized kernels
round differently from transformers' dequantized fp32 weights, so near-ties may break the other way).

    flock /tmp/tunewise-cpu.lock python bench/eval_throughput.py            # ~5 minutes on 2 CPU cores
    python bench/eval_throughput.py --n 64 --batch-size 16 --parallel 8 --model path/to/hf-dir
    python bench/eval_throughput.py --parallel 0                            # transformers only
    python bench/eval_throughput.py --n 16 --shots 3                        # 3-shot prompts (~2,000 tokens)
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from tunewise.models.base import GenerationConfig
from tunewise.models.llamacpp import LlamaCppBackend
from tunewise.models.local import LocalBackend

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT / "examples" / "receipts" / "data" / "dev.jsonl"
INSTRUCTION = (
    'Extract the key fields of this receipt. Answer with one JSON object with the keys "company", "date", '
    '"address" and "total".'
)


def load_conversations(path: Path, n: int, shots: int = 0) -> list[list[dict[str, str]]]:
    """``n`` receipts of a ``{"text": ...}`` JSONL file as system + user conversations.

    With ``shots`` > 0, the file's first ``shots`` rows, solved (their ``fields`` as JSON, or their ``target``), come
    between the system message and the receipt in every conversation, the same ones each time (``k_shot`` with
    random shots is such a fixed prompt); the ``n`` receipts are the rows after them.
    """
    rows = []
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if len(rows) == n + shots:
                break
            if line.strip():
                rows.append(json.loads(line))
    if len(rows) < n + shots:
        raise SystemExit(f"{path}: only {len(rows)} rows, --n {n} and --shots {shots} asked")
    prefix = [{"role": "system", "content": INSTRUCTION}]
    for row in rows[:shots]:
        answer = json.dumps(row["fields"]) if "fields" in row else row.get("target")
        if not isinstance(answer, str):
            raise SystemExit(f"{path}: --shots needs rows with 'fields' or a 'target' string")
        prefix += [{"role": "user", "content": row["text"]}, {"role": "assistant", "content": answer}]
    return [[*prefix, {"role": "user", "content": row["text"]}] for row in rows[shots:]]


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
    parser.add_argument("--shots", type=int, default=0, help="solved receipts before each one (a fixed k-shot prompt)")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's choice)")
    parser.add_argument(
        "--parallel", type=int, default=4, help="llama.cpp engine: server slots / requests in flight (0: skip it)"
    )
    args = parser.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    # Two more receipts than timed warm the engines up: llama-server caches the prompts it saw, so warming up on
    # the timed prompts would hand it their prefill for free.
    loaded = load_conversations(args.data, args.n + 2, args.shots)
    conversations, warm_up = loaded[: args.n], loaded[args.n :]
    backend = LocalBackend(args.model)
    model, tokenizer = backend.load()
    config = GenerationConfig(max_new_tokens=args.max_new_tokens, batch_size=args.batch_size)
    # Warm-up: first calls pay for allocator growth and kernel selection.
    backend.generate(warm_up, GenerationConfig(max_new_tokens=4, batch_size=2))
    naive_generate(model, tokenizer, warm_up[:1], 4)

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
    if args.parallel > 0:
        _llamacpp(args, conversations, warm_up, naive, naive_s, naive_prefill_s)


def _llamacpp(
    args: argparse.Namespace,
    conversations: list[list[dict[str, str]]],
    warm_up: list[list[dict[str, str]]],
    naive: list[str],
    naive_s: float,
    naive_prefill_s: float,
) -> None:
    """The llama.cpp engine on the same prompts; its server starts (and warms up) before the clock runs.

    The prefill-only pass runs on a second, fresh server: the first one has the prompts in its prompt cache by then.
    """
    timings = []
    for max_new_tokens in (args.max_new_tokens, 1):
        backend = LlamaCppBackend(args.model, parallel=args.parallel)
        try:
            start = time.perf_counter()
            backend.generate(warm_up, GenerationConfig(max_new_tokens=4))
            startup_s = time.perf_counter() - start
            start = time.perf_counter()
            completions = backend.generate(conversations, GenerationConfig(max_new_tokens=max_new_tokens))
            timings.append((time.perf_counter() - start, startup_s, completions))
        finally:
            backend.close()
    (engine_s, startup_s, completions), (prefill_s, _, _) = timings
    agree = sum(c.text == t for c, t in zip(completions, naive, strict=True))
    new_tokens = sum(c.completion_tokens for c in completions)
    print(f"llama.cpp engine (parallel {args.parallel}), started and warmed up in {startup_s:.1f} s:")
    print(f"  {args.n / engine_s:6.3f} examples/s  ({engine_s:6.1f} s), {new_tokens} new tokens")
    print(f"  speed-up vs naive:    {naive_s / engine_s:6.2f}x")
    print(f"  prefill only (1 token): {prefill_s:.1f} s (naive {naive_prefill_s:.1f} s)")
    print(f"  identical outputs to naive: {agree}/{args.n}")


if __name__ == "__main__":
    main()
