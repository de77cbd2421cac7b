"""Shared decide fixtures: words for synthetic topics, and a sufficiency estimate and cost with known values."""

from __future__ import annotations

from tunewise.config import EngineeringSpec
from tunewise.decide.cost import CostEstimate, estimate_cost
from tunewise.decide.sufficiency import SufficiencyEstimate, estimate_needed

WORDS = [
    "amber",
    "basil",
    "cedar",
    "delta",
    "ember",
    "fjord",
    "grove",
    "heron",
    "indigo",
    "juniper",
    "kestrel",
    "lotus",
    "maple",
    "nectar",
    "onyx",
    "pepper",
    "quartz",
    "raven",
    "saffron",
    "thistle",
    "umber",
    "violet",
    "willow",
    "yarrow",
]
"""24 words no tokenizer splits alike: project names, secrets, topics."""


def sample_estimate() -> SufficiencyEstimate:
    """A learning curve 0.95 - 2/sqrt(n) measured at 32/64/128 examples, against a target of 0.85."""
    sizes = [32, 64, 128]
    return estimate_needed(sizes, [0.95 - 2.0 * n**-0.5 for n in sizes], 0.85, eval_n=200, samples=50)


def sample_cost() -> CostEstimate:
    """400 examples of 120.5 tokens, 3 epochs at 250 tok/s and $2/h, 1B tokens a month at $1 vs $0.1 per 1M."""
    return estimate_cost(
        train_examples=400,
        tokens_per_example=120.5,
        epochs=3,
        tokens_per_s=250.0,
        gpu_hour_usd=2.0,
        engineering=EngineeringSpec(),
        traffic_tokens_per_month=1e9,
        hosted_usd_per_1m=1.0,
        self_hosted_usd_per_1m=0.1,
    )
