"""Extraction metrics: find the JSON object in a raw output, validate it, and score its fields.

Parsing rules (in order):

1. the whole output (stripped) is JSON: an object is the answer; any other JSON value (a list, a string, a number)
   is *not* parsed — the task asks for one object, and a list of objects is a different answer, not a wrapper;
2. the body of the first ```` ```json ```` (or bare ```` ``` ````) fence that holds a JSON object;
3. the first balanced ``{...}`` in the text that decodes as a JSON object (prose before it and trailing text after it
   are ignored).

A truncated or otherwise malformed object is not parsed. An output that is not parsed scores every field as wrong,
even a field whose gold value is empty: an unusable answer gets no credit. A parsed object missing a field is
treated as predicting it empty.
"""

from __future__ import annotations

import json
import re
from typing import Any

from tunewise.metrics.context import MetricContext
from tunewise.metrics.normalize import is_empty, token_f1, values_equal

_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_-]*)[ \t]*\n?(.*?)```", re.S)
_DECODER = json.JSONDecoder()


def extract_json_object(text: str) -> dict[str, Any] | None:
    """The JSON object a model's output holds, or ``None`` (see the module docstring for the rules)."""
    stripped = text.strip()
    if not stripped:
        return None
    try:
        whole = json.loads(stripped)
    except ValueError:
        pass
    else:
        return whole if isinstance(whole, dict) else None
    for match in _FENCE.finditer(stripped):
        found = _first_object(match.group(2))
        if found is not None:
            return found
    return _first_object(stripped)


def _first_object(text: str) -> dict[str, Any] | None:
    start = text.find("{")
    while start != -1:
        try:
            value, _ = _DECODER.raw_decode(text, start)
        except ValueError:
            value = None
        if isinstance(value, dict):
            return value
        start = text.find("{", start + 1)
    return None


def score_extract(ctx: MetricContext, output: str, target: Any) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """Parse one raw output and score it against a gold object.

    The scored fields are the schema's ``properties`` (every example then has the same fields), or the gold
    object's keys when the schema has none.

    Returns:
        ``(parsed, scores)``: the JSON object (or ``None``) and ``{"parsed", "schema_valid", "schema_error",
        "fields": {field: bool}, "field_f1": {field: token F1}, "exact_match", "n_fields", "n_correct", "tp",
        "fp", "fn"}``. ``tp`` counts gold non-empty fields predicted correctly, ``fp`` predicted non-empty fields
        that are not correct, ``fn`` gold non-empty fields not predicted correctly (a wrong value is both an
        ``fp`` and an ``fn``).

    Raises:
        ValueError: the target is not a JSON object.
    """
    if not isinstance(target, dict):
        raise ValueError(f"an extract target must be a JSON object, got {type(target).__name__}")
    parsed = extract_json_object(output)
    schema_error = None if parsed is not None else "no JSON object found"
    if parsed is not None and ctx.validator is not None:
        error = next(iter(ctx.validator.iter_errors(parsed)), None)
        if error is not None:
            where = "/".join(str(p) for p in error.absolute_path) or "(root)"
            schema_error = f"{where}: {error.message}"[:200]
    fields: dict[str, bool] = {}
    field_f1: dict[str, float] = {}
    tp = fp = fn = 0
    for name in ctx.fields if ctx.fields is not None else list(target):
        gold = target.get(name)
        predicted = parsed.get(name) if parsed is not None else None
        correct = parsed is not None and _field_correct(ctx, name, predicted, gold)
        fields[name] = correct
        field_f1[name] = round(token_f1(predicted, gold), 6) if parsed is not None else 0.0
        gold_present, predicted_present = not is_empty(gold), parsed is not None and not is_empty(predicted)
        tp += int(correct and gold_present)
        fp += int(predicted_present and not correct)
        fn += int(gold_present and not correct)
    scores = {
        "parsed": parsed is not None,
        "schema_valid": parsed is not None and schema_error is None,
        "schema_error": schema_error,
        "fields": fields,
        "field_f1": field_f1,
        "exact_match": parsed is not None and all(fields.values()),
        "n_fields": len(fields),
        "n_correct": sum(fields.values()),
        "tp": tp,
        "fp": fp,
        "fn": fn,
    }
    return parsed, scores


def _field_correct(ctx: MetricContext, name: str, predicted: Any, gold: Any) -> bool:
    if is_empty(gold):
        return is_empty(predicted)
    if is_empty(predicted):
        return False
    normalizer = ctx.field_normalizers.get(name, "text")
    return values_equal(predicted, gold, normalizer, fuzzy_threshold=ctx.fuzzy_threshold)
