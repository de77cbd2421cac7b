"""Which teacher answers become training targets: parsed, valid, complete, not a refusal, agreeing with gold."""

from __future__ import annotations

import json
from typing import Any

from tunewise.metrics import MetricContext
from tunewise.metrics.classify import map_label
from tunewise.metrics.extract import extract_json_object, score_extract
from tunewise.metrics.refusal import is_refusal
from tunewise.records import Completion

REASONS = {
    "truncated": "cut by max_new_tokens",
    "empty": "empty answer",
    "refusal": "a refusal",
    "unparsed": "no JSON object",
    "schema": "breaks the output schema",
    "not_a_label": "names no label (or several)",
    "gold_disagrees": "disagrees with the input's gold target",
}
"""Why a teacher answer is not kept, as counted in the dataset card."""


def teacher_target(
    ctx: MetricContext, completion: Completion, *, drop_refusals: bool = True
) -> tuple[Any, str | None, str]:
    """The training target a teacher answer gives, or why it gives none.

    Returns:
        ``(target, reason, detail)``: the parsed object (extract), the label (classify) or the stripped text
        (generate/chat) and ``None``; or ``None`` and a key of :data:`REASONS` with a detail for the card.
    """
    text = completion.text.strip()
    if completion.finish_reason == "length":
        return None, "truncated", f"{completion.completion_tokens} tokens"
    if not text:
        return None, "empty", ""
    if drop_refusals and is_refusal(text):
        return None, "refusal", text[:80]
    if ctx.kind == "extract":
        parsed = extract_json_object(text)
        if parsed is None:
            return None, "unparsed", text[:80]
        if ctx.validator is not None:
            error = next(iter(ctx.validator.iter_errors(parsed)), None)
            if error is not None:
                where = "/".join(str(p) for p in error.absolute_path) or "(root)"
                return None, "schema", f"{where}: {error.message}"[:120]
        return parsed, None, ""
    if ctx.kind == "classify":
        label = map_label(text, ctx.labels or [])
        return (label, None, "") if label is not None else (None, "not_a_label", text[:80])
    return text, None, ""


def agrees(ctx: MetricContext, target: Any, gold: Any) -> bool:
    """Whether a teacher target matches a gold one: same label, same object (field by field, as scored), same text."""
    if ctx.kind == "classify":
        return str(target).strip() == str(gold).strip()
    if ctx.kind == "extract":
        _, scores = score_extract(ctx, json.dumps(target), gold)
        return bool(scores["exact_match"])
    return " ".join(str(target).split()) == " ".join(str(gold).split())
