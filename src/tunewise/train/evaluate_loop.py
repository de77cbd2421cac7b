"""Eval-in-the-loop: greedy generation with the model being trained, scored with the task metric.

The prompt is rendered exactly as the ``local`` backend renders it (chat template + generation prompt, left
padding, greedy decoding, stop at eos), so the number tracked during training is the one the eval harness reports
for the saved adapter on the same examples.

On a CPU the generation runs on a merged copy of the model (base + LoRA folded into one weight): decoding a 135M
model is dominated by per-module overhead, and an unmerged all-linear adapter doubles the modules a token passes
through (32 receipts: 77.5 s unmerged, 51.4 s merged, same field accuracy; docs/performance.md). The copy costs
a third of a second and the model's memory once; on a GPU, where that memory is the scarce thing, and for a 4-bit
base, which cannot be merged exactly, the adapter generates unmerged.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any

from tunewise.config import Project
from tunewise.metrics.core import MetricContext, example_values, metric_value, score_outputs
from tunewise.records import Example, Message


@dataclass(frozen=True)
class LoopEval:
    """One evaluation during training."""

    metric: str
    value: float
    n: int
    outputs: list[str]
    per_example: dict[str, float] | None = None
    """Example id -> its value (mean = ``value``), for paired comparisons between runs scored on the same examples."""


def generate_texts(
    model: Any,
    tokenizer: Any,
    conversations: Sequence[list[Message]],
    *,
    max_new_tokens: int,
    batch_size: int,
    autocast: Any = None,
) -> list[str]:
    """Greedy completions of ``conversations`` with an already-loaded model; results in input order.

    Prompts are sorted by length and left-padded per batch; each completion stops at the first eos.
    """
    import torch

    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    prompts = []
    for conversation in conversations:
        rendered = tokenizer.apply_chat_template(list(conversation), add_generation_prompt=True, tokenize=False)
        prompts.append(list(tokenizer(rendered, add_special_tokens=False)["input_ids"]))
    order = sorted(range(len(prompts)), key=lambda i: (len(prompts[i]), i))
    texts: list[str] = [""] * len(prompts)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            width = max(len(prompts[i]) for i in chunk)
            ids = torch.tensor([[pad] * (width - len(prompts[i])) + prompts[i] for i in chunk], device=device)
            mask = torch.tensor([[0] * (width - len(prompts[i])) + [1] * len(prompts[i]) for i in chunk], device=device)
            with torch.inference_mode(), autocast or nullcontext():
                out = model.generate(
                    input_ids=ids,
                    attention_mask=mask,
                    max_new_tokens=max_new_tokens,
                    do_sample=False,
                    num_beams=1,
                    pad_token_id=pad,
                    eos_token_id=eos,
                    use_cache=True,
                )
            for index, row in zip(chunk, out[:, width:].tolist(), strict=True):
                row = row[: row.index(eos)] if eos in row else row
                texts[index] = tokenizer.decode(row, skip_special_tokens=True)
    finally:
        model.train(was_training)
    return texts


def score_texts(
    project: Project, examples: Sequence[Example], outputs: Sequence[str]
) -> tuple[str, float, dict[str, float] | None]:
    """The project's primary metric (field accuracy for extraction, ...) over ``outputs``; higher is better.

    Returns:
        The metric's name, its value, and the per-example values by id (``None`` for a metric that is not a mean).
    """

    context = MetricContext.from_project(project)
    scored = [scores for _, scores in score_outputs(context, list(outputs), [e.target for e in examples])]
    metric = project.spec.primary_metric
    values = example_values(context, scored, metric)
    if values is None:  # macro-F1: not a mean of per-example values
        value = metric_value(context, scored, metric)
        if value is None:
            raise ValueError(f"the metric {metric!r} cannot be computed from these outputs")
        return metric, value, None
    return metric, float(values.mean()), {e.id: float(v) for e, v in zip(examples, values, strict=True)}


def evaluate_in_loop(
    project: Project,
    model: Any,
    tokenizer: Any,
    examples: Sequence[Example],
    *,
    max_new_tokens: int,
    batch_size: int,
    autocast: Any = None,
    rank: int = 0,
    world_size: int = 1,
) -> LoopEval:
    """Generate on ``examples`` (sharded across processes, gathered back in order) and score the task metric."""
    shard = list(examples)[rank::world_size]
    with merged_for_generation(model) as generating:
        outputs = generate_texts(
            generating,
            tokenizer,
            [e.messages for e in shard],
            max_new_tokens=max_new_tokens,
            batch_size=batch_size,
            autocast=autocast,
        )
    if world_size > 1:
        import torch.distributed as dist

        gathered: list[Any] = [None] * world_size
        dist.all_gather_object(gathered, outputs)
        merged: list[str] = [""] * len(examples)
        for r, part in enumerate(gathered):
            for offset, text in enumerate(part):
                merged[r + offset * world_size] = text
        outputs = merged
    metric, value, per_example = score_texts(project, examples, outputs)
    return LoopEval(metric, value, len(examples), outputs, per_example)


@contextmanager
def merged_for_generation(model: Any) -> Iterator[Any]:
    """A merged copy of a LoRA model on a CPU (see the module docstring), else ``model`` itself.

    The model being trained is never touched: merging in place and unmerging after would not give the same base
    weights back in bf16.
    """
    import torch

    device = next(model.parameters()).device
    mergeable = (
        hasattr(model, "merge_and_unload") and device.type == "cpu" and not getattr(model, "is_loaded_in_4bit", False)
    )
    if not mergeable:
        yield model
        return
    with torch.no_grad():
        merged = copy.deepcopy(model).merge_and_unload()
    yield merged
