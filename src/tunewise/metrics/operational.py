"""Operational figures of a candidate: latency percentiles, token counts, throughput and dollars per 1M tokens."""

from __future__ import annotations

import numpy as np

# US dollars per 1M (input, output) tokens: list prices of hosted models, standard tier, no batch or cache discounts.
# Source: the providers' pricing pages (openai.com/api/pricing, anthropic.com/pricing,
# ai.google.dev/gemini-api/docs/pricing) as published in mid-2025 (gemini-2.5-pro: prompts up to 200k tokens).
# Prices change; pass price_in_per_1m / price_out_per_1m in the model spec to override.
PRICE_TABLE: dict[str, tuple[float, float]] = {
    "gpt-4o": (2.50, 10.00),
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4.1": (2.00, 8.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1-nano": (0.10, 0.40),
    "claude-3-5-haiku": (0.80, 4.00),
    "claude-sonnet-4": (3.00, 15.00),
    "claude-opus-4": (15.00, 75.00),
    "gemini-2.0-flash": (0.10, 0.40),
    "gemini-2.5-flash": (0.30, 2.50),
    "gemini-2.5-pro": (1.25, 10.00),
}


def hosted_price(model: str) -> tuple[float, float] | None:
    """``(input, output)`` $ per 1M tokens for a model in :data:`PRICE_TABLE`, matching dated names by prefix.

    ``"gpt-4o-mini-2024-07-18"`` resolves to ``gpt-4o-mini`` (the longest matching key), an unknown model to ``None``.
    """
    name = model.lower().split("/")[-1]
    matches = [key for key in PRICE_TABLE if name == key or name.startswith(key + "-")]
    return PRICE_TABLE[max(matches, key=len)] if matches else None


def operational_summary(
    latencies_ms: list[float],
    prompt_tokens: list[int],
    completion_tokens: list[int],
    wall_time_s: float,
    *,
    price_in_per_1m: float | None = None,
    price_out_per_1m: float | None = None,
    gpu_hour_usd: float | None = None,
) -> dict[str, float]:
    """Latency, tokens, throughput and cost of one candidate's run.

    Cost: with hosted prices, ``usd_per_1m_tokens`` is the price table weighted by the measured prompt/completion
    mix, ``(p_in * P + p_out * C) / (P + C)``; otherwise, with ``gpu_hour_usd``, the machine's hourly price over
    the measured throughput of all tokens, ``gpu_hour_usd / ((P + C) / wall_time_s * 3600) * 1e6``. Hosted prices
    win when both are given. ``usd_total`` is what the run itself cost. Without prices the cost keys are absent.

    Args:
        latencies_ms: per-request latency.
        prompt_tokens: per-request prompt tokens.
        completion_tokens: per-request completion tokens.
        wall_time_s: wall-clock time of the whole run (requests may overlap).

    Returns:
        ``{"requests", "wall_time_s", "latency_p50_ms", "latency_p95_ms", "latency_mean_ms", "prompt_tokens_mean",
        "completion_tokens_mean", "tokens_per_s" (completion tokens / wall time), "total_tokens_per_s",
        ["usd_per_1m_tokens", "usd_total"]}``.

    Raises:
        ValueError: no requests, lists of different lengths, a negative wall time, only one of the two prices.
    """
    n = len(latencies_ms)
    if n == 0:
        raise ValueError("no requests to summarise")
    if not n == len(prompt_tokens) == len(completion_tokens):
        raise ValueError(f"per-request lists differ in length: {n}, {len(prompt_tokens)}, {len(completion_tokens)}")
    if wall_time_s < 0:
        raise ValueError(f"wall_time_s must be >= 0, got {wall_time_s}")
    if (price_in_per_1m is None) != (price_out_per_1m is None):
        raise ValueError("hosted pricing needs both price_in_per_1m and price_out_per_1m")
    latencies = np.asarray(latencies_ms, dtype=np.float64)
    total_prompt, total_completion = float(np.sum(prompt_tokens)), float(np.sum(completion_tokens))
    total = total_prompt + total_completion
    rate = (lambda tokens: tokens / wall_time_s) if wall_time_s > 0 else (lambda tokens: 0.0)
    summary = {
        "requests": float(n),
        "wall_time_s": float(wall_time_s),
        "latency_p50_ms": float(np.percentile(latencies, 50)),
        "latency_p95_ms": float(np.percentile(latencies, 95)),
        "latency_mean_ms": float(latencies.mean()),
        "prompt_tokens_mean": total_prompt / n,
        "completion_tokens_mean": total_completion / n,
        "tokens_per_s": rate(total_completion),
        "total_tokens_per_s": rate(total),
    }
    if price_in_per_1m is not None and price_out_per_1m is not None:
        if total > 0:
            usd_total = (price_in_per_1m * total_prompt + price_out_per_1m * total_completion) / 1e6
            summary["usd_per_1m_tokens"] = usd_total / total * 1e6
            summary["usd_total"] = usd_total
    elif gpu_hour_usd is not None and total > 0 and wall_time_s > 0:
        summary["usd_per_1m_tokens"] = gpu_hour_usd / (total / wall_time_s * 3600) * 1e6
        summary["usd_total"] = gpu_hour_usd * wall_time_s / 3600
    return summary
