"""The rules that turn probe measurements (and declared needs) into a node's yes / no / unknown, in words.

Each rule is its verdict (:mod:`tunewise.decide.verdicts`: the answer and the figures it rests on) followed by its
explanation (:mod:`tunewise.decide.reasons`: those figures in words).
"""

from __future__ import annotations

from tunewise.decide.facts import Facts
from tunewise.decide.reasons import reason
from tunewise.decide.record import NodeAnswer
from tunewise.decide.verdicts import (
    Verdict,
    knowledge_verdict,
    persona_verdict,
    residency_verdict,
    smaller_faster_verdict,
    structured_output_verdict,
)


def node_answer(verdict: Verdict) -> NodeAnswer:
    """The verdict as the report records it: the answer, its reason in words, and its evidence."""
    return NodeAnswer(
        verdict.node,
        verdict.answer,
        reason(verdict),
        list(verdict.evidence),
        verdict.declared,
        verdict.settled,
        verdict.failure if verdict.answer == "unknown" else None,
    )


def knowledge(facts: Facts) -> NodeAnswer:
    return node_answer(knowledge_verdict(facts))


def structured_output(facts: Facts) -> NodeAnswer:
    return node_answer(structured_output_verdict(facts))


def smaller_faster(facts: Facts) -> NodeAnswer:
    return node_answer(smaller_faster_verdict(facts))


def residency(facts: Facts) -> NodeAnswer:
    return node_answer(residency_verdict(facts))


def persona(facts: Facts) -> NodeAnswer:
    return node_answer(persona_verdict(facts))
