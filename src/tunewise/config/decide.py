"""The ``decide:`` section of ``tunewise.yaml``: declared needs, probe sizes, sufficiency runs and cost inputs."""

from __future__ import annotations

import itertools
from typing import Literal

from pydantic import Field, field_validator, model_validator

from tunewise.config.base import Strict

Range = tuple[float, float]


def _check_range(value: Range) -> Range:
    low, high = value
    if low < 0 or high < low:
        raise ValueError(f"expected [low, high] with 0 <= low <= high, got [{low}, {high}]")
    return value


class NeedsSpec(Strict):
    """What the task declares it needs; ``auto`` means: decide from measurements."""

    domain_knowledge: bool | Literal["auto"] = "auto"
    """Facts the model lacks. ``auto``: answered by the RAG probe when ``data.documents`` is declared."""
    persona: bool = False
    """A tone / persona held across long conversations."""


class ProbeSpec(Strict):
    """How the cheap evaluations are sized: sequentially, in chunks, until the CI answers the node."""

    model: str | None = None
    """The model probed with prompts (default: the first candidate's model, else the embedded model)."""
    chunk: int = Field(16, ge=2)
    """Examples added per round."""
    max_examples: int = Field(160, ge=2)
    """Hard cap per probe. A probe reaches it only while a CI straddles the threshold: at accuracy ~0.85 a half-width of
    0.05 needs ~160 examples, and a lower cap leaves such a decision provisional."""
    ci_half_width: float = Field(0.05, gt=0, le=0.5)
    """Stop once every 95% CI is at most this wide on each side (or already excludes the threshold)."""
    k_shot: int = Field(3, ge=1)
    shot_selection: Literal["random", "similar"] = "similar"
    retriever: Literal["bm25", "dense", "hybrid"] = "hybrid"
    retrieval_k: int = Field(3, ge=1)
    min_gain: float = Field(0.05, ge=0, le=1)
    """A probe 'closes the gap' only if it gains at least this much (metric units) with a CI excluding 0."""
    gold_doc_field: str = "context_id"
    """The data field naming each example's gold document id, for recall@k (skipped when absent)."""
    constrained: bool = True
    """Run the constrained-decoding probe for extraction tasks on a local model."""
    likelihood: bool = True
    """Run the answer-likelihood probe (local probe model): do the retrieved passages make the answers likelier?"""
    min_nll_gain: float = Field(0.1, ge=0)
    """Nats per answer token the retrieved passages must save over placebo passages (0.1 = ~10% lower perplexity)."""
    nll_ci_half_width: float = Field(0.05, gt=0)
    """The answer-likelihood probe stops once its gain CI is at most this wide on each side."""

    @model_validator(mode="after")
    def _chunk_fits(self) -> ProbeSpec:
        if self.chunk > self.max_examples:
            raise ValueError(f"chunk ({self.chunk}) is larger than max_examples ({self.max_examples})")
        return self


class SufficiencySpec(Strict):
    """The data-sufficiency probe: short LoRA runs on growing subsets of train, then a learning curve."""

    enabled: bool = True
    subsets: list[int] = Field(default_factory=lambda: [24, 48, 96])
    """Doubling sizes: the curve's exponent comes from their ratio. 32/64/128 cost a third more on the receipts
    (docs/performance.md); a spec with more time can list larger ones."""
    epochs: float = Field(1.0, gt=0)
    """Passes over each subset, so that every size gets the same treatment."""
    max_steps: int = Field(32, ge=1)
    """Cap on optimizer steps per run: a probe, not a fine-tune."""
    batch_size: int = Field(4, ge=1)
    """Sequences per optimizer step (no gradient accumulation: short runs need many small steps)."""
    eval_examples: int = Field(32, ge=4)
    """Dev examples each run is scored on (their count sets the per-point uncertainty)."""
    bootstrap: int = Field(400, ge=50)

    @field_validator("subsets")
    @classmethod
    def _increasing(cls, subsets: list[int]) -> list[int]:
        if len(subsets) < 2 or any(b <= a for a, b in itertools.pairwise(subsets)) or subsets[0] < 2:
            raise ValueError("subsets must be at least two increasing sizes, each >= 2")
        return subsets


class EngineeringSpec(Strict):
    """Engineering effort by phase, in engineer-weeks [low, high], and its price."""

    data_curation_weeks: Range = (2, 6)
    eval_harness_weeks: Range = (1, 2)
    training_pipeline_weeks: Range = (1, 1)
    serving_weeks: Range = (1, 2)
    refresh_every_months: Range = (3, 6)
    refresh_weeks: Range = (0.5, 1)
    """Effort of one refresh (new data, retrain, re-evaluate)."""
    usd_per_engineer_week: float = Field(4000.0, ge=0)

    _ranges = field_validator(
        "data_curation_weeks",
        "eval_harness_weeks",
        "training_pipeline_weeks",
        "serving_weeks",
        "refresh_weeks",
        "refresh_every_months",
    )(_check_range)

    @field_validator("refresh_every_months")
    @classmethod
    def _positive_period(cls, value: Range) -> Range:
        if value[0] <= 0:
            raise ValueError("a refresh period must be longer than 0 months")
        return value


class DecideSpec(Strict):
    """Everything ``tunewise decide`` needs beyond the targets: declared needs, probe sizes, cost inputs."""

    needs: NeedsSpec = NeedsSpec()
    probes: ProbeSpec = ProbeSpec()
    sufficiency: SufficiencySpec = SufficiencySpec()
    engineering: EngineeringSpec = EngineeringSpec()
    traffic_tokens_per_month: float = Field(0.0, ge=0)
    """Declared production traffic (prompt + completion tokens per month), for inference cost and break-even."""
    gpu_hour_usd: float | None = Field(None, ge=0)
    """$/GPU-hour for training and self-hosting (default: ``eval.gpu_hour_usd``)."""
    hosted_usd_per_1m: float | None = Field(None, ge=0)
    """Price of the hosted alternative per 1M tokens (default: the declared openai models' prices)."""
    training_epochs: float = Field(3.0, gt=0)
