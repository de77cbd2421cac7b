"""The ``distill:`` section: which candidate teaches, what it labels, what it may spend, and what is kept."""

from __future__ import annotations

from pydantic import Field, model_validator

from tunewise.config.base import Strict


class DistillSpec(Strict):
    """How ``tunewise distill`` labels inputs with a teacher and trains the student (the ``train:`` section) on them."""

    teacher: str | None = None
    """The name of a candidate of the spec: a model plus its prompt (k-shot, RAG, constrained decoding...)."""
    inputs: str | None = None
    """A JSONL of unlabelled inputs (the spec's input field, or chat rows such as ``tunewise logs export`` writes);
    default: the inputs of ``data.train``, their targets ignored."""
    dataset: str | None = None
    """Instead of ``inputs``: the train split of a dataset version (hash, prefix or ``latest``), its targets kept
    aside as reference gold."""
    max_inputs: int | None = Field(None, ge=1)
    """Label at most this many inputs (the first ones after de-duplication, in a fixed spread order)."""
    max_usd: float | None = Field(None, gt=0)
    """Spend cap in US dollars for a priced teacher, checked before every call against the call's worst case."""
    max_tokens: int | None = Field(None, ge=1)
    """Cap on the teacher's tokens (prompt + completion), checked the same way."""
    concurrency: int | None = Field(None, ge=1)
    """Teacher requests in flight (default: the teacher model's ``concurrency``)."""
    redact_pii: bool = True
    """Mask e-mails, card numbers, phone numbers... in the inputs before a hosted teacher sees them."""
    drop_refusals: bool = True
    """Drop answers that refuse the task ("I'm sorry, I can't...") instead of training on them."""
    drop_disagreeing_gold: bool = True
    """Where an input carries a gold target, keep the teacher's label only if it agrees with it."""
    dev_examples: int | None = Field(None, ge=1)
    """Gold dev examples for the student-vs-teacher report (default: the whole dev split)."""

    @model_validator(mode="after")
    def _one_source(self) -> DistillSpec:
        if self.inputs is not None and self.dataset is not None:
            raise ValueError("give distill.inputs or distill.dataset, not both")
        return self
