"""The small calculations the training loop relies on, each unit-tested on its own.

Loss normalisation under gradient accumulation is the classic silent bug (torchtune #2307, transformers #34191):
averaging per-micro-batch means weights a short micro-batch's tokens more than a long one's. Here every micro-batch
contributes ``sum of its token losses / target tokens of the whole accumulated step``, so the accumulated gradient
equals that of one big batch, whatever the micro-batch split and the number of processes.
"""

from __future__ import annotations

import math
from typing import Any

from tunewise.train.collate import IGNORE_INDEX


def token_loss_sum(logits: Any, labels: Any) -> tuple[Any, int]:
    """Summed next-token cross-entropy over labelled positions, and how many positions that is.

    ``logits`` is ``(batch, seq, vocab)``, ``labels`` ``(batch, seq)`` with ``-100`` where there is no target;
    position ``t`` predicts label ``t + 1``.
    """
    import torch.nn.functional as F

    shift_logits = logits[:, :-1, :]
    shift_labels = labels[:, 1:]
    keep = shift_labels != IGNORE_INDEX
    count = int(keep.sum())
    if count == 0:
        return shift_logits.sum() * 0.0, 0
    # Only labelled positions go through the (vocab-wide) softmax: most tokens of a prompt-heavy task are masked.
    selected = shift_logits[keep].float()
    loss = F.cross_entropy(selected, shift_labels[keep], reduction="sum")
    return loss, count


def label_positions(labels: Any) -> Any:
    """Sequence positions whose next-token prediction is labelled in at least one row of the batch.

    Passed to the model as ``logits_to_keep``: the vocabulary-wide output head (a fifth of a small model's compute
    and most of its activation memory) then runs only where there is a target, not over the whole prompt.
    """
    import torch

    keep = (labels[:, 1:] != IGNORE_INDEX).any(dim=0).nonzero().flatten()
    return keep if keep.numel() else torch.zeros(1, dtype=torch.long, device=labels.device)


def kept_loss_sum(logits: Any, labels: Any, positions: Any) -> tuple[Any, int]:
    """Like :func:`token_loss_sum` for logits computed only at ``positions`` (``(batch, len(positions), vocab)``)."""
    import torch.nn.functional as F

    targets = labels[:, positions + 1]
    keep = targets != IGNORE_INDEX
    count = int(keep.sum())
    if count == 0:
        return logits.sum() * 0.0, 0
    return F.cross_entropy(logits[keep].float(), targets[keep], reduction="sum"), count


def scaled_micro_loss(loss_sum: Any, step_target_tokens: int, world_size: int = 1) -> Any:
    """The quantity to ``backward()`` for one micro-batch.

    Data-parallel training averages gradients over ``world_size`` processes, hence the multiplication: the
    result is the gradient of ``(sum of token losses over all processes and micro-batches) / step_target_tokens``.
    """
    if step_target_tokens <= 0:
        raise ValueError("an optimizer step needs at least one target token")
    return loss_sum * (world_size / step_target_tokens)


def lr_factor(step: int, total_steps: int, warmup_steps: int, schedule: str) -> float:
    """Learning-rate multiplier at optimizer step ``step`` (0-based): linear warmup, then the schedule down to 0."""
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "constant":
        return 1.0
    remaining = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / remaining)
    if schedule == "linear":
        return 1.0 - progress
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    raise ValueError(f"unknown lr schedule {schedule!r}")


def total_optimizer_steps(
    batches_per_epoch: int, gradient_accumulation: int, epochs: float, max_steps: int | None
) -> int:
    """Optimizer steps of a run: ``max_steps`` when given, else enough for ``epochs`` passes (at least one)."""
    if max_steps is not None:
        return max_steps
    return max(1, math.ceil(batches_per_epoch * epochs / gradient_accumulation))


def tokens_per_second(tokens: int, seconds: float) -> float:
    return tokens / seconds if seconds > 0 else 0.0
