"""Output drift without labels: validity, null fields, predicted labels, refusals and length of what the model
answered in the window, against what it answered on reference inputs.

The request log does not record token log-probabilities, so the mean log-prob of the answers is not a signal here.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from tunewise.metrics import MetricContext, extract_json_object, map_label
from tunewise.metrics.classify import INVALID
from tunewise.metrics.refusal import is_refusal
from tunewise.monitor.descriptors import length_signal, rate_rise
from tunewise.monitor.record import SignalResult
from tunewise.monitor.stats import label_shift, mann_whitney, mean_difference_ci
from tunewise.monitor.traffic import TrafficRow


@dataclass(frozen=True)
class OutputReference:
    """What the window's outputs are compared with.

    ``model``/``given``: answers of the watched model on reference inputs (every output signal); ``gold``: the dev
    set's gold targets (label distribution and null fields only: gold is valid, never refuses, and has its own
    length); ``none``: no output signal.
    """

    kind: Literal["model", "given", "gold", "none"]
    outputs: list[str] = field(default_factory=list)
    """Raw answers (``model``, ``given``)."""
    targets: list[Any] = field(default_factory=list)
    """Gold targets (``gold``)."""
    tokens: list[int] | None = None
    """Completion tokens of ``outputs`` when known."""
    detail: str = ""


def is_valid(ctx: MetricContext, text: str) -> bool:
    """Whether an answer is usable: a JSON object matching the schema (extract), a label of the set (classify)."""
    if ctx.kind == "extract":
        parsed = extract_json_object(text)
        return parsed is not None and (ctx.validator is None or ctx.validator.is_valid(parsed))
    if ctx.kind == "classify":
        return map_label(text, ctx.labels or []) is not None
    return bool(text.strip())


def row_valid(ctx: MetricContext, row: TrafficRow) -> bool:
    """A window answer's validity: what the server logged when it checked (``schema_valid``, ``json_valid``), else
    parsed here."""
    if ctx.kind == "extract":
        if row.schema_valid is not None:
            return row.schema_valid
        if row.json_valid is False:
            return False
    return is_valid(ctx, row.output or "")


def null_rate(ctx: MetricContext, value: Any) -> float | None:
    """The share of the schema's fields (else the object's keys) that are missing, null or empty; ``None`` when the
    value is not an object."""
    if not isinstance(value, dict):
        return None
    names = ctx.fields or list(value)
    if not names:
        return None
    return sum(value.get(name) in (None, "", [], {}) for name in names) / len(names)


def predicted_label(ctx: MetricContext, text: str) -> str:
    """The label an answer names, as the classify metric maps it, or ``(invalid)``."""
    return map_label(text, ctx.labels or []) or INVALID


def output_signals(
    ctx: MetricContext, reference: OutputReference, rows: list[TrafficRow], *, bootstrap: int, seed: int
) -> list[SignalResult]:
    """Every output signal the task kind and the reference allow, on the window rows that carry an output."""
    answered = [r for r in rows if r.output is not None]
    if not answered or reference.kind == "none":
        return []
    texts = [r.output or "" for r in answered]
    signals: list[SignalResult] = []
    from_model = reference.kind in ("model", "given") and bool(reference.outputs)
    if from_model and ctx.kind in ("extract", "classify"):
        drop = rate_rise(
            "output_validity",
            "output",
            [not is_valid(ctx, t) for t in reference.outputs],
            [not row_valid(ctx, r) for r in answered],
        )
        signals.append(
            dataclasses.replace(
                drop,
                reference_value=1 - (drop.reference_value or 0.0),
                window_value=1 - (drop.window_value or 0.0),
                detail={**drop.detail, "measures": "valid share; effect = its drop"},
            )
        )
    if ctx.kind == "extract":
        ref_values = [extract_json_object(t) for t in reference.outputs] if from_model else list(reference.targets)
        signal = _null_fields(ctx, ref_values, [extract_json_object(t) for t in texts], bootstrap=bootstrap, seed=seed)
        if signal is not None:
            signals.append(signal)
    if ctx.kind == "classify":
        ref_labels = (
            [predicted_label(ctx, t) for t in reference.outputs]
            if from_model
            else [str(t).strip() for t in reference.targets]
        )
        if ref_labels:
            signals.append(_label_shift(ref_labels, [predicted_label(ctx, t) for t in texts], bootstrap, seed))
    if from_model:
        signals.append(
            rate_rise("refusals", "output", [is_refusal(t) for t in reference.outputs], [is_refusal(t) for t in texts])
        )
        signals.append(_length(reference, answered, bootstrap=bootstrap, seed=seed))
    return signals


def _null_fields(
    ctx: MetricContext, reference: list[Any], window: list[Any], *, bootstrap: int, seed: int
) -> SignalResult | None:
    ref = [x for x in (null_rate(ctx, v) for v in reference) if x is not None]
    win = [x for x in (null_rate(ctx, v) for v in window) if x is not None]
    if not ref or not win:
        return None
    rise, low, high = mean_difference_ci(np.array(ref), np.array(win), bootstrap=bootstrap, seed=seed)
    return SignalResult(
        name="null_fields",
        group="output",
        effect=rise,
        ci_low=low,
        ci_high=high,
        p_value=mann_whitney(np.array(ref), np.array(win)),
        test="mann_whitney_u",
        reference_value=float(np.mean(ref)),
        window_value=float(np.mean(win)),
        n_reference=len(ref),
        n_window=len(win),
        detail={"measures": "mean share of null or empty fields per parsed answer"},
    )


def _label_shift(reference: list[str], window: list[str], bootstrap: int, seed: int) -> SignalResult:
    tv, low, high, p = label_shift(reference, window, bootstrap=bootstrap, seed=seed)
    counts = {
        "reference_counts": {label: reference.count(label) for label in sorted(set(reference))},
        "window_counts": {label: window.count(label) for label in sorted(set(window))},
    }
    return SignalResult(
        name="label_shift",
        group="output",
        effect=tv,
        ci_low=low,
        ci_high=high,
        p_value=p,
        test="tv_permutation",
        n_reference=len(reference),
        n_window=len(window),
        detail=counts,
    )


def _length(reference: OutputReference, rows: list[TrafficRow], *, bootstrap: int, seed: int) -> SignalResult:
    """Completion tokens when both sides have them, else characters (never one unit against the other)."""
    window_tokens = [r.completion_tokens for r in rows]
    if reference.tokens is not None and all(t is not None and t > 0 for t in window_tokens):
        ref, win, unit = list(reference.tokens), [float(t or 0) for t in window_tokens], "completion tokens"
    else:
        ref, win, unit = [len(t) for t in reference.outputs], [len(r.output or "") for r in rows], "characters"
    return length_signal("output_length", "output", ref, win, unit=unit, bootstrap=bootstrap, seed=seed)
