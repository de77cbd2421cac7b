"""The tree as data, the rules on hand-made measurements, the walk, the report, the Decision round trip."""

from __future__ import annotations

import dataclasses
import json

import pytest

from tests.support.decisions import sample_cost, sample_estimate
from tunewise.config import DecideSpec, NeedsSpec
from tunewise.decide import TREE, NodeAnswer, walk
from tunewise.decide.cost import CostEstimate
from tunewise.decide.facts import Facts, Gain, Measured
from tunewise.decide.record import AnswerLikelihood, Decision, Evidence, ProbeRecord
from tunewise.decide.report import to_html, to_markdown, tree_svg
from tunewise.decide.rules import knowledge, persona, residency, smaller_faster, structured_output
from tunewise.decide.sufficiency import CurveFit, SufficiencyEstimate
from tunewise.records import MetricValue


def m(
    name: str,
    value: float,
    half: float = 0.05,
    *,
    hosted: bool = False,
    ops: dict | None = None,
    constrained: bool = False,
) -> Measured:
    return Measured(
        name=name,
        probe="prompts",
        prompt="zero_shot",
        self_hosted=not hosted,
        metric=MetricValue(value, value - half, value + half, 50),
        run_id="run-1",
        operational=ops or {},
        validity=MetricValue(1.0, 1.0, 1.0, 50) if constrained else None,
        constrained=constrained,
    )


def facts(candidates: list[Measured], **kw: object) -> Facts:
    base = dict(
        kind="classify", metric="accuracy", threshold=0.8, needs=NeedsSpec(), min_gain=0.05, candidates=candidates
    )
    return Facts(**(base | kw))  # type: ignore[arg-type]


def test_tree_is_data_with_the_issue_order() -> None:
    assert [n.id for n in TREE] == ["knowledge", "structured_output", "smaller_faster", "residency", "persona"]
    assert [n.action for n in TREE] == ["rag", "fine_tune", "distill", "open_weight_fine_tune", "fine_tune"]
    assert all(n.question.endswith("?") and n.rule for n in TREE)


def test_knowledge_rule() -> None:
    base = [m("zero", 0.3), m("rag", 0.85)]
    yes = knowledge(facts(base, has_documents=True, rag_gain=Gain("zero", "rag", 0.55, 0.4, 0.7, 50, "r")))
    assert yes.answer == "yes" and "+55.0 points" in yes.reason and "reaches the target" in yes.reason
    assert yes.evidence[-1].ci_low == 0.4
    no = knowledge(facts(base, has_documents=True, rag_gain=Gain("zero", "rag", 0.02, -0.03, 0.07, 50, "r")))
    assert no.answer == "no" and "includes 0" in no.reason
    small = knowledge(facts(base, has_documents=True, rag_gain=Gain("zero", "rag", 0.03, 0.01, 0.05, 50, "r")))
    assert small.answer == "no" and "minimum gain" in small.reason
    assert knowledge(facts(base)).answer == "no"  # nothing to retrieve from
    assert knowledge(facts(base, has_documents=True, rag_error="BackendError: down")).answer == "unknown"
    assert knowledge(facts(base, needs=NeedsSpec(domain_knowledge=True))).declared


def likelihood(vs_placebo: tuple[float, float, float], vs_closed: tuple[float, float, float]) -> AnswerLikelihood:
    return AnswerLikelihood(
        closed_book=3.0,
        retrieved=3.0 - vs_closed[0],
        placebo=3.0 - vs_closed[0] + vs_placebo[0],
        gain_vs_closed_book=MetricValue(*vs_closed, 32),
        gain_vs_placebo=MetricValue(*vs_placebo, 32),
        n=32,
    )


def test_knowledge_rule_reads_the_answer_likelihood_against_placebo_passages() -> None:
    flat = Gain("zero", "rag", -0.01, -0.08, 0.06, 32, "r")
    base = [m("zero", 0.3), m("rag", 0.29)]
    facts_found = knowledge(
        facts(base, has_documents=True, rag_gain=flat, likelihood=likelihood((0.35, 0.2, 0.5), (0.3, 0.1, 0.5)))
    )
    assert facts_found.answer == "yes" and "does not yet turn them into better answers" in facts_found.reason
    assert "+0.35 nats/token vs placebo" in facts_found.reason and "30% lower perplexity" in facts_found.reason
    assert [e.metric for e in facts_found.evidence[-2:]] == ["answer_nll_gain", "answer_nll_gain"]
    # Any passage hurting the closed-book likelihood is a format effect; the placebo controls for it.
    long_context = knowledge(
        facts(base, has_documents=True, rag_gain=flat, likelihood=likelihood((0.4, 0.2, 0.6), (-2.0, -2.5, -1.5)))
    )
    assert long_context.answer == "yes" and "less likely" in long_context.reason
    unrelated = knowledge(
        facts(base, has_documents=True, rag_gain=flat, likelihood=likelihood((-0.2, -0.4, -0.05), (-0.5, -0.9, -0.1)))
    )
    assert unrelated.answer == "no" and unrelated.reason.startswith("neither the answers nor their likelihood")
    tiny = knowledge(
        facts(base, has_documents=True, rag_gain=flat, likelihood=likelihood((0.05, 0.01, 0.09), (0.05, 0.0, 0.1)))
    )
    assert tiny.answer == "no"  # significant, but under probes.min_nll_gain (0.1)
    only_likelihood = knowledge(
        facts(base, has_documents=True, rag_error="down", likelihood=likelihood((0.5, 0.3, 0.7), (0.5, 0.3, 0.7)))
    )
    assert only_likelihood.answer == "yes" and "did not run (down)" in only_likelihood.reason


def test_structured_output_rule_uses_the_ci() -> None:
    assert structured_output(facts([m("a", 0.4), m("b", 0.5)])).answer == "yes"
    assert structured_output(facts([m("a", 0.9)])).answer == "no"
    straddle = structured_output(facts([m("a", 0.78, 0.1)]))
    assert straddle.answer == "yes" and "still includes" in straddle.reason and not straddle.settled
    assert structured_output(facts([m("a", 0.4), m("b", 0.5)])).settled
    barely = structured_output(facts([m("a", 0.82, 0.1)]))
    assert barely.answer == "no" and not barely.settled and "reaches below" in barely.reason
    assert structured_output(facts([m("a", 0.4)], kind="generate")).answer == "no"
    assert structured_output(facts([], prompt_error="prompts: down")).answer == "unknown"
    with_grammar = structured_output(facts([m("a", 0.3), m("a+grammar", 0.35, constrained=True)], kind="extract"))
    assert "constrained decoding" in with_grammar.reason and "validity 1.00" in with_grammar.reason


def test_smaller_faster_rule() -> None:
    slow = m("big", 0.9, ops={"latency_p95_ms": 900.0, "usd_per_1m_tokens": 5.0})
    fast_bad = m("small", 0.5, ops={"latency_p95_ms": 50.0, "usd_per_1m_tokens": 0.1})
    assert smaller_faster(facts([slow, fast_bad])).answer == "no"  # no budget declared
    assert smaller_faster(facts([slow, fast_bad], p95_latency_ms=200.0)).answer == "yes"
    fast_good = m("mid", 0.85, ops={"latency_p95_ms": 100.0})
    assert smaller_faster(facts([slow, fast_good], p95_latency_ms=200.0)).answer == "no"
    assert smaller_faster(facts([m("x", 0.9)], p95_latency_ms=200.0)).answer == "unknown"
    assert smaller_faster(facts([fast_bad], p95_latency_ms=200.0)).answer == "no"


def test_residency_and_persona_rules() -> None:
    hosted, local = m("api", 0.9, hosted=True), m("local", 0.4)
    assert residency(facts([hosted, local])).answer == "no"
    fired = residency(facts([hosted, local], self_hosted_only=True))
    assert fired.answer == "yes" and "only hosted candidates" in fired.reason and "excluded: api" in fired.reason
    assert residency(facts([hosted, m("local", 0.9)], self_hosted_only=True)).answer == "no"
    assert persona(facts([local])).answer == "no"
    assert persona(facts([local], needs=NeedsSpec(persona=True))).answer == "yes"


def answers(**values: str) -> dict[str, NodeAnswer]:
    return {n.id: NodeAnswer(n.id, values.get(n.id, "no"), "r") for n in TREE}  # type: ignore[arg-type]


def test_walk() -> None:
    w = walk(answers(knowledge="yes", structured_output="yes"), False)
    assert (w.recommendation, w.path, w.also) == ("rag", ["knowledge"], ["fine_tune"])
    w = walk(answers(knowledge="unknown", residency="yes"), False)
    assert w.recommendation == "open_weight_fine_tune" and w.provisional and w.path[-1] == "residency"
    assert walk(answers(), True).recommendation == "do_not_fine_tune"
    assert walk(answers(), False).path[-1] == "not_good_enough"
    straddling = answers(structured_output="yes")
    straddling["structured_output"] = NodeAnswer("structured_output", "yes", "CI includes the target", settled=False)
    assert walk(straddling, False).provisional and not walk(answers(structured_output="yes"), False).provisional
    straddling["knowledge"] = NodeAnswer("knowledge", "yes", "clear")
    assert not walk(straddling, False).provisional  # decided before the unsettled node


def test_walk_is_undecided_only_when_a_failed_probe_left_a_node_it_depends_on_unknown() -> None:
    failed = answers()
    failed["structured_output"] = NodeAnswer("structured_output", "unknown", "no result", error="prompts: down")
    w = walk(failed, False)
    assert (w.recommendation, w.fallback, w.unmeasured) == (
        "undecided",
        "improve_prompting",
        {"structured_output": "prompts: down"},
    )
    assert w.path[-1] == "not_good_enough" and w.provisional
    failed["knowledge"] = NodeAnswer("knowledge", "yes", "declared", declared=True)
    assert walk(failed, False).recommendation == "rag"  # decided before the unmeasured node: it cannot change this
    budget = answers(smaller_faster="unknown")  # unknown for want of a figure, no probe failed
    assert walk(budget, False).recommendation == "improve_prompting" and walk(budget, False).provisional
    assert walk(answers(), True, terminal_error="prompts: down").recommendation == "undecided"
    assert walk(answers(persona="yes"), False, terminal_error="prompts: down").recommendation == "fine_tune"


def sample_decision() -> Decision:
    node_answers = [
        NodeAnswer(
            n.id,
            "yes" if n.id == "structured_output" else "no",
            f"because {n.id}",
            [
                Evidence(
                    label="a",
                    metric="accuracy",
                    value=0.4,
                    ci_low=0.3,
                    ci_high=0.5,
                    threshold=0.8,
                    n=50,
                    run_id="run-1",
                    probe="prompts",
                )
            ],
        )
        for n in TREE
    ]
    sufficiency = SufficiencyEstimate(
        status="ok", reason="r", target=0.8, sizes=[8, 16], values=[0.3, 0.4], n_low=10.0, n_high=99.0, p_reachable=0.9
    )
    return Decision(
        project="p",
        created_at="2026-01-01T00:00:00",
        decision_id="id1",
        recommendation="fine_tune",
        summary="Fine-tune <now>",
        path=["knowledge", "structured_output"],
        answers=node_answers,
        runner_up="do_not_fine_tune",
        runner_up_reason="below target",
        next_command="tunewise train .",
        metric="accuracy",
        threshold=0.8,
        probes=[
            ProbeRecord(
                name="prompts", candidates=["a"], n=16, seconds=1.5, run_ids=["run-1"], stopped="CIs settled at n=16"
            )
        ],
        sufficiency=sufficiency,
        cost=None,
    )


def test_decision_round_trip_and_reports() -> None:
    d = sample_decision()
    assert Decision.from_dict(d.to_dict()) == d
    md = to_markdown(d)
    assert "# Decision for p: Fine-tune" in md and "| prompts | a | 16 | 1.5 |" in md and "run run-1" in md
    svg = tree_svg(d)
    assert svg.count("<rect") == len(TREE) * 2 + 2 and 'stroke-width="4"' in svg
    page = to_html(d)
    assert "&lt;now&gt;" in page and "<script" not in page


def test_a_decision_with_sufficiency_and_cost_survives_json_unchanged() -> None:
    estimate = dataclasses.replace(sample_estimate(), train_size=100, predicted_at_train_size=0.75)
    cost = sample_cost()
    d = dataclasses.replace(sample_decision(), sufficiency=estimate, cost=cost)
    data = json.loads(json.dumps(d.to_dict()))
    again = Decision.from_dict(data)
    assert again == d
    assert isinstance(again.sufficiency, SufficiencyEstimate) and isinstance(again.sufficiency.fit, CurveFit)
    assert isinstance(again.cost, CostEstimate) and again.cost.engineering_weeks["total"] == (5, 11)
    assert isinstance(again.answers[0].evidence[0], Evidence) and isinstance(again.probes[0], ProbeRecord)
    # decision.json keeps the layout it had when these were dicts: a reader of an older file still loads it
    assert set(data["sufficiency"]["fit"]) == {"a", "b", "c", "c_assumed"}
    assert data["sufficiency"]["train_size"] == 100 and data["cost"]["engineering_usd"] == [20000, 44000]


def test_decide_spec_rejects_contradictions() -> None:
    with pytest.raises(ValueError, match="increasing"):
        DecideSpec.model_validate({"sufficiency": {"subsets": [64, 32]}})
    with pytest.raises(ValueError, match="chunk"):
        DecideSpec.model_validate({"probes": {"chunk": 100, "max_examples": 10}})
    with pytest.raises(ValueError, match="extra"):
        DecideSpec.model_validate({"probes": {"chunks": 8}})
