"""Operational figures: latency percentiles, throughput, hosted and self-hosted $ per 1M tokens."""

from __future__ import annotations

import pytest

from tunewise.metrics import PRICE_TABLE, hosted_price, operational_summary

LATENCIES = [100.0, 200.0, 300.0, 400.0, 500.0]
PROMPT = [100] * 5  # 500 prompt tokens
COMPLETION = [20] * 5  # 100 completion tokens


def test_latency_tokens_throughput() -> None:
    ops = operational_summary(LATENCIES, PROMPT, COMPLETION, 10.0)
    assert ops["latency_p50_ms"] == 300.0
    assert ops["latency_p95_ms"] == pytest.approx(480.0)  # 400 + 0.8 * 100
    assert ops["prompt_tokens_mean"] == 100.0
    assert ops["completion_tokens_mean"] == 20.0
    assert ops["tokens_per_s"] == 10.0
    assert ops["total_tokens_per_s"] == 60.0
    assert "usd_per_1m_tokens" not in ops


def test_hosted_cost_weighted_by_measured_mix() -> None:
    ops = operational_summary(LATENCIES, PROMPT, COMPLETION, 10.0, price_in_per_1m=2.5, price_out_per_1m=10.0)
    # (2.5 * 500 + 10 * 100) / 1e6 = $0.00225 for 600 tokens -> $3.75 per 1M
    assert ops["usd_total"] == pytest.approx(0.00225)
    assert ops["usd_per_1m_tokens"] == pytest.approx(3.75)


def test_self_hosted_cost_from_throughput() -> None:
    ops = operational_summary(LATENCIES, PROMPT, COMPLETION, 10.0, gpu_hour_usd=1.8)
    # 60 tok/s = 216,000 tok/h -> 1.8 / 216000 * 1e6
    assert ops["usd_per_1m_tokens"] == pytest.approx(1.8 / 216000 * 1e6)
    assert ops["usd_total"] == pytest.approx(0.005)


def test_hosted_price_wins_and_errors() -> None:
    ops = operational_summary(
        LATENCIES, PROMPT, COMPLETION, 10.0, price_in_per_1m=1.0, price_out_per_1m=1.0, gpu_hour_usd=9.0
    )
    assert ops["usd_per_1m_tokens"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="both"):
        operational_summary(LATENCIES, PROMPT, COMPLETION, 10.0, price_in_per_1m=1.0)
    with pytest.raises(ValueError, match="no requests"):
        operational_summary([], [], [], 1.0)
    with pytest.raises(ValueError, match="differ in length"):
        operational_summary(LATENCIES, PROMPT[:2], COMPLETION, 1.0)


def test_price_table_lookup() -> None:
    assert hosted_price("gpt-4o-mini-2024-07-18") == PRICE_TABLE["gpt-4o-mini"]
    assert hosted_price("openai/gpt-4o") == PRICE_TABLE["gpt-4o"]
    assert hosted_price("gpt-4.1-nano") == (0.10, 0.40)
    assert hosted_price("my-local-model") is None
