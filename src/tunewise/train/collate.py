"""Conversations -> token ids and labels for completion-only loss.

Labels are set by *position*: every token of a prompt (system and user turns, the chat template's role headers) is
``-100``; every assistant turn's content and its end-of-turn token are labelled. Masking by ``pad_token_id`` would
also mask the end-of-turn token when pad == eos (SmolLM2), and the model would never learn to stop.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from tunewise.errors import InputError
from tunewise.records import Example, Message

IGNORE_INDEX = -100


@dataclass(frozen=True)
class Encoded:
    """One training sequence."""

    id: str
    input_ids: list[int]
    labels: list[int]

    @property
    def target_tokens(self) -> int:
        return sum(1 for label in self.labels if label != IGNORE_INDEX)


@dataclass(frozen=True)
class EncodeReport:
    """What encoding did to the dataset: how many rows were too long and what happened to them."""

    total: int
    kept: int
    overlength: int
    truncated: int
    dropped: int
    max_length: int
    overlength_ids: list[str] = field(default_factory=list)

    def describe(self) -> str:
        if not self.overlength:
            return f"{self.total} examples, none longer than {self.max_length} tokens"
        action = f"truncated {self.truncated}" if self.truncated else ""
        if self.dropped:
            action = ", ".join(a for a in (action, f"dropped {self.dropped}") if a)
        return f"{self.overlength} of {self.total} examples exceed max_length={self.max_length} tokens ({action})"


def training_messages(example: Example, answer: str) -> list[Message]:
    """The conversation a model is trained on: the example's input turns plus the target as the assistant's turn."""
    return [*example.messages, {"role": "assistant", "content": answer}]


def encode_conversation(tokenizer: Any, messages: Sequence[Message], *, example_id: str = "") -> Encoded:
    """Tokenize a conversation with the model's chat template; label only the assistant turns.

    Each assistant turn's span runs from the end of the generation prompt that precedes it to the end of its
    end-of-turn token (the tokenizer's eos), so the model learns to stop.

    Raises:
        InputError: the conversation has no assistant turn, or the chat template does not render prefixes
            consistently (a template that rewrites earlier turns cannot be masked by position).
    """
    messages = list(messages)
    text = tokenizer.apply_chat_template(messages, tokenize=False)
    eos = tokenizer.eos_token
    spans: list[tuple[int, int]] = []
    for index, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        start_text = tokenizer.apply_chat_template(messages[:index], tokenize=False, add_generation_prompt=True)
        end_text = tokenizer.apply_chat_template(messages[: index + 1], tokenize=False)
        if not (text.startswith(start_text) and text.startswith(end_text) and len(end_text) >= len(start_text)):
            raise InputError(
                "the chat template does not render conversation prefixes consistently",
                field=f"{example_id}: messages[{index}]",
            )
        end = end_text.rfind(eos, len(start_text))
        end = end + len(eos) if end >= 0 else len(end_text)
        spans.append((len(start_text), end))
    if not spans:
        raise InputError("no assistant turn to learn from", field=f"{example_id}: messages")
    encoding = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    input_ids = list(encoding["input_ids"])
    labels = [IGNORE_INDEX] * len(input_ids)
    for position, (char_start, char_end) in enumerate(encoding["offset_mapping"]):
        if char_end > char_start and any(start <= char_start and char_end <= end for start, end in spans):
            labels[position] = input_ids[position]
    return Encoded(example_id, input_ids, labels)


def encode_examples(
    tokenizer: Any, examples: Sequence[Example], answers: Sequence[str], *, max_length: int, overlength: str
) -> tuple[list[Encoded], EncodeReport]:
    """Encode every example and apply the overlength policy (``truncate`` keeps the head, ``drop`` removes the row).

    A truncated sequence that keeps no labelled token is dropped as well (nothing to learn from).
    """
    kept: list[Encoded] = []
    over_ids: list[str] = []
    truncated = dropped = 0
    for example, answer in zip(examples, answers, strict=True):
        encoded = encode_conversation(tokenizer, training_messages(example, answer), example_id=example.id)
        if len(encoded.input_ids) > max_length:
            over_ids.append(example.id)
            if overlength == "drop":
                dropped += 1
                continue
            encoded = Encoded(encoded.id, encoded.input_ids[:max_length], encoded.labels[:max_length])
            if encoded.target_tokens == 0:
                dropped += 1
                continue
            truncated += 1
        kept.append(encoded)
    report = EncodeReport(len(examples), len(kept), len(over_ids), truncated, dropped, max_length, over_ids)
    return kept, report


def pad_batch(sequences: Sequence[Encoded], pad_id: int) -> dict[str, Any]:
    """Right-pad a micro-batch: ``input_ids``, ``attention_mask`` and ``labels`` (-100 on padding) as tensors."""
    import torch

    width = max(len(s.input_ids) for s in sequences)
    input_ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    labels = torch.full((len(sequences), width), IGNORE_INDEX, dtype=torch.long)
    attention = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        n = len(seq.input_ids)
        input_ids[row, :n] = torch.tensor(seq.input_ids)
        labels[row, :n] = torch.tensor(seq.labels)
        attention[row, :n] = 1
    return {"input_ids": input_ids, "attention_mask": attention, "labels": labels}
