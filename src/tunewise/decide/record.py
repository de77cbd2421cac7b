"""The ``Decision`` record: the path through the tree, every node's answer with its evidence, cost and ROI."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from tunewise.decide.cost import CostEstimate
from tunewise.decide.sufficiency import SufficiencyEstimate
from tunewise.records import SCHEMA_VERSION, MetricValue, Record

AnswerValue = Literal["yes", "no", "unknown"]


@dataclass(frozen=True, kw_only=True)
class Evidence(Record):
    """One measurement behind an answer: a candidate's metric with its CI against a threshold, from a probe run."""

    label: str
    metric: str
    value: float | None
    ci_low: float | None = None
    ci_high: float | None = None
    threshold: float | None = None
    n: int | None = None
    run_id: str | None = None
    probe: str | None = None


@dataclass(frozen=True)
class NodeAnswer(Record):
    """A node's answer and why: ``reason`` is the rule applied to the evidence, in words."""

    node: str
    answer: AnswerValue
    reason: str
    evidence: list[Evidence] = field(default_factory=list)
    declared: bool = False
    """Answered from the spec's declarations rather than from measurements."""
    settled: bool = True
    """False when the answer rests on a CI that still includes the threshold: more examples could flip it."""
    error: str | None = None
    """Why an ``unknown`` could not be measured: the error of the failed probe (``None`` when nothing failed)."""


@dataclass(frozen=True, kw_only=True)
class AnswerLikelihood(Record):
    """Mean nats per reference-answer token in each context, and the paired gains (positive: retrieval helps)."""

    closed_book: float
    retrieved: float
    placebo: float
    gain_vs_closed_book: MetricValue
    gain_vs_placebo: MetricValue
    n: int

    @property
    def perplexity_drop(self) -> float:
        """Share of answer perplexity the specific passages remove, relative to the placebo passages."""
        return 1.0 - float(np.exp(-self.gain_vs_placebo.value))


@dataclass(frozen=True, kw_only=True)
class ProbeRecord(Record):
    """One probe: which candidates it evaluated, on how many examples, how long it took and why it stopped."""

    name: str
    candidates: list[str]
    n: int
    seconds: float
    run_ids: list[str] = field(default_factory=list)
    stopped: str = ""
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    """Probe-specific figures for the report (recall@k, the likelihoods, the training points), as JSON data."""


@dataclass(frozen=True, kw_only=True)
class Decision(Record):
    """What ``tunewise decide`` concluded, with everything needed to check it."""

    project: str
    created_at: str
    decision_id: str
    recommendation: str
    """An action id of the tree (``rag``, ``fine_tune``, ``distill``, ``open_weight_fine_tune``, ``do_not_fine_tune``,
    ``improve_prompting``), or ``undecided`` when a failed probe left a node the answer depends on unknown."""
    summary: str
    path: list[str]
    """Node ids visited, in order, ending at the node (or terminal) that decided."""
    answers: list[NodeAnswer]
    runner_up: str
    runner_up_reason: str
    next_command: str
    also: list[str] = field(default_factory=list)
    """Actions of nodes that fired after the deciding one (e.g. fine-tune on top of RAG)."""
    provisional: bool = False
    """Some node was ``unknown``: the recommendation could change once it is measured."""
    metric: str = ""
    threshold: float | None = None
    probes: list[ProbeRecord] = field(default_factory=list)
    sufficiency: SufficiencyEstimate | None = None
    cost: CostEstimate | None = None
    mlflow_run_id: str | None = None
    schema_version: int = SCHEMA_VERSION

    def answer(self, node: str) -> NodeAnswer:
        for answer in self.answers:
            if answer.node == node:
                return answer
        raise KeyError(node)
