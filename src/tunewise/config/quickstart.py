"""The ``quickstart:`` section: the small budget ``tunewise quickstart`` runs by default (``--full`` ignores it)."""

from __future__ import annotations

from pydantic import Field

from tunewise.config.base import Strict


class QuickstartSpec(Strict):
    """A budget a newcomer waits for (~20 minutes on 2 CPU cores for the receipts) that still answers the question.

    Pick it from a measured learning curve (``tunewise decide --sufficiency``): the smallest training budget whose
    fine-tune beats the best prompt with a paired CI that excludes zero on ``dev_examples``.
    """

    dev_examples: int = Field(48, ge=8)
    """Every evaluation (baselines, probes, the fine-tune) uses the first N dev examples."""
    train_examples: int = Field(128, ge=2)
    """The LoRA run trains on a seeded subset of this many train examples (the spec's ``train:`` section otherwise)."""
    epochs: float = Field(2.0, gt=0)
    """Passes over that subset."""
    full_budget: str | None = None
    """What the full budget (``--full``: the spec's ``train:`` section, every dev example) measured, in words, quoted
    by the report next to the small budget's result (e.g. ``"field accuracy 0.850 [0.805, 0.885], README"``)."""
