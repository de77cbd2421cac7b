"""Cost and ROI of fine-tuning: compute from measured tokens/s, engineering by phase, inference, break-even."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from tunewise.config import EngineeringSpec
from tunewise.records import Record

PHASES = ("data_curation", "eval_harness", "training_pipeline", "serving")


@dataclass(frozen=True, kw_only=True)
class CostEstimate(Record):
    """All money in US dollars; ``None`` where an input was not measured or declared (see ``notes``).

    Ranges are ``(low, high)`` pairs; ``engineering_weeks`` maps each phase of :data:`PHASES` (and ``total``) to one.
    """

    train_examples: int
    tokens_per_example: float
    epochs: float
    train_tokens: float
    tokens_per_s: float | None
    gpu_hour_usd: float
    compute_hours: float | None
    compute_usd: float | None
    engineering_weeks: dict[str, tuple[float, float]]
    engineering_usd: tuple[float, float]
    refresh_usd_per_month: tuple[float, float]
    traffic_tokens_per_month: float
    hosted_usd_per_1m: float | None
    self_hosted_usd_per_1m: float | None
    hosted_usd_per_month: float | None
    self_hosted_usd_per_month: float | None
    upfront_usd: float | None
    monthly_saving_usd: float | None
    break_even_month: int | None
    notes: list[str] = field(default_factory=list)


def engineering_weeks(spec: EngineeringSpec) -> dict[str, tuple[float, float]]:
    """Engineer-weeks [low, high] by phase, plus their total."""
    weeks = {phase: tuple(getattr(spec, f"{phase}_weeks")) for phase in PHASES}
    weeks["total"] = (sum(w[0] for w in weeks.values()), sum(w[1] for w in weeks.values()))
    return weeks  # type: ignore[return-value]


def estimate_cost(
    *,
    train_examples: int,
    tokens_per_example: float,
    epochs: float,
    tokens_per_s: float | None,
    gpu_hour_usd: float,
    engineering: EngineeringSpec,
    traffic_tokens_per_month: float,
    hosted_usd_per_1m: float | None,
    self_hosted_usd_per_1m: float | None,
) -> CostEstimate:
    """Price a fine-tune and compare running it self-hosted with a hosted model at the declared traffic.

    Args:
        train_examples: labelled examples the fine-tune will use (the sufficiency estimate, else the train split).
        tokens_per_example: measured (or counted) training tokens per example.
        tokens_per_s: measured training throughput; ``None`` leaves compute unpriced.
        gpu_hour_usd: price of the training / serving machine per hour.
        hosted_usd_per_1m / self_hosted_usd_per_1m: inference prices per 1M tokens.

    Returns:
        The estimate; the break-even month is the first month whose cumulative saving covers the upfront cost
        (compute + engineering midpoint), ``None`` when the fine-tune never pays back or prices are missing.
    """
    notes: list[str] = []
    train_tokens = train_examples * tokens_per_example * epochs
    compute_hours = compute_usd = None
    if tokens_per_s and tokens_per_s > 0:
        compute_hours = train_tokens / tokens_per_s / 3600
        compute_usd = compute_hours * gpu_hour_usd
    else:
        notes.append("training throughput not measured: compute cost unknown")
    weeks = engineering_weeks(engineering)
    rate = engineering.usd_per_engineer_week
    eng_usd = (weeks["total"][0] * rate, weeks["total"][1] * rate)
    refresh_low = engineering.refresh_weeks[0] * rate / engineering.refresh_every_months[1]
    refresh_high = engineering.refresh_weeks[1] * rate / engineering.refresh_every_months[0]
    hosted_month = self_month = None
    if hosted_usd_per_1m is not None:
        hosted_month = traffic_tokens_per_month / 1e6 * hosted_usd_per_1m
    else:
        notes.append("no hosted price declared (decide.hosted_usd_per_1m or an openai model's prices)")
    if self_hosted_usd_per_1m is not None:
        self_month = traffic_tokens_per_month / 1e6 * self_hosted_usd_per_1m
    else:
        notes.append("self-hosted $/1M tokens not measured")
    if traffic_tokens_per_month == 0:
        notes.append("no traffic declared (decide.traffic_tokens_per_month): inference costs are 0")
    upfront = (compute_usd or 0.0) + sum(eng_usd) / 2
    saving = break_even = None
    if hosted_month is not None and self_month is not None:
        saving = hosted_month - self_month - (refresh_low + refresh_high) / 2
        if saving > 0:
            break_even = max(1, math.ceil(upfront / saving))
        else:
            notes.append("self-hosting the fine-tune does not save money at this traffic: no break-even")
    return CostEstimate(
        train_examples=train_examples,
        tokens_per_example=tokens_per_example,
        epochs=epochs,
        train_tokens=train_tokens,
        tokens_per_s=tokens_per_s,
        gpu_hour_usd=gpu_hour_usd,
        compute_hours=compute_hours,
        compute_usd=compute_usd,
        engineering_weeks=weeks,
        engineering_usd=eng_usd,
        refresh_usd_per_month=(refresh_low, refresh_high),
        traffic_tokens_per_month=traffic_tokens_per_month,
        hosted_usd_per_1m=hosted_usd_per_1m,
        self_hosted_usd_per_1m=self_hosted_usd_per_1m,
        hosted_usd_per_month=hosted_month,
        self_hosted_usd_per_month=self_month,
        upfront_usd=upfront,
        monthly_saving_usd=saving,
        break_even_month=break_even,
        notes=notes,
    )
