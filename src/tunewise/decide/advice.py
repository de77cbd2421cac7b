"""Words around the recommendation: the one-line summary, the runner-up and why it lost, the next command."""

from __future__ import annotations

from tunewise.config import DecideSpec, Project
from tunewise.decide.facts import Facts, Measured
from tunewise.decide.reasons import describe
from tunewise.decide.record import NodeAnswer
from tunewise.decide.sufficiency import SufficiencyEstimate
from tunewise.decide.tree import ACTIONS, TREE, Walk
from tunewise.distill.record import latest_result


def summary_line(
    rec: str, deciding: str, answers: dict[str, NodeAnswer], facts: Facts, admissible: list[Measured]
) -> str:
    title = ACTIONS[rec].title
    if deciding in answers:
        return f"{title}. Decided by '{deciding}': {answers[deciding].reason}"
    best = facts.best(admissible) if admissible else facts.best()
    if rec == "do_not_fine_tune" and best is not None:
        return f"{title}: {describe(best, facts.metric)} reaches the target {facts.threshold}."
    gap = f" The best candidate is {describe(best, facts.metric)}, target {facts.threshold}." if best else ""
    return f"{title}: no node calls for fine-tuning, retrieval or distillation.{gap}"


def runner_up(rec: str, facts: Facts, answers: dict[str, NodeAnswer], admissible: list[Measured]) -> tuple[str, str]:
    """The second-best path and why it lost."""
    best = facts.best([m for m in facts.candidates if facts.admissible(m)]) or facts.best()
    if ACTIONS[rec].fine_tunes:
        if best is None:
            return "improve_prompting", "no prompt could be measured, so nothing shows prompting is enough"
        return (
            "do_not_fine_tune",
            f"ship the best prompt instead: lost because {describe(best, facts.metric)} "
            f"stays below the target {facts.threshold}",
        )
    if rec == "rag":
        gain, likelihood = facts.rag_gain, facts.likelihood
        how = (
            f" Passages add {gain.diff * 100:+.1f} points to {gain.a} without training."
            if gain and gain.diff > 0
            else ""
        )
        if likelihood is not None and likelihood.gain_vs_placebo.value > 0:
            how += f" The retrieved passages cut the reference answers' perplexity by {likelihood.perplexity_drop:.0%}."
        return (
            "fine_tune",
            "fine-tuning for knowledge lost: facts are better retrieved than trained "
            f"(they change, and a fine-tune must be redone).{how}",
        )
    if rec == "do_not_fine_tune":
        return "fine_tune", "lost: the target is already met without training, so its cost buys nothing the task needs"
    return "fine_tune", "lost: no node calls for it; " + "; ".join(
        f"{k}: {a.reason}" for k, a in answers.items() if a.answer != "yes"
    )[:400]


def next_command(
    rec: str,
    project: Project,
    spec: DecideSpec,
    facts: Facts,
    admissible: list[Measured],
    sufficiency: SufficiencyEstimate | None,
) -> str:
    where = f"-c {project.spec_file or project.root}"
    held_out = (
        "--split test" if project.spec.data.test else "--split dev (declare data.test: a split no probe has seen)"
    )
    if rec == "rag":
        p, gain = spec.probes, facts.rag_gain
        rag = next((m for m in facts.candidates if gain is not None and m.name == gain.b), None)
        prompt = "name: rag, prompt: rag"
        if rag is not None and rag.prompt == "k_shot_rag":  # the probed prompt: passages on top of the best k-shot
            prompt = f"name: {rag.name}, prompt: k_shot_rag, k: {p.k_shot}, shot_selection: {p.shot_selection}"
        return (
            f"add the candidate {{{prompt}, retriever: {p.retriever}, retrieval_k: {p.retrieval_k}}} "
            f"to candidates in tunewise.yaml, then: tunewise eval {where} {held_out}"
        )
    if rec == "do_not_fine_tune":
        best = facts.best(admissible)
        name = best.name if best else "the best candidate"
        return f"confirm {name} on a held-out split: tunewise eval {where} {held_out}"
    if rec == "distill":
        best = facts.best([m for m in facts.candidates if facts.meets(m)])
        teacher = best.name if best else "<the candidate that meets the target>"
        figures = distilled_figures(project)
        return f"set distill.teacher: {teacher} in tunewise.yaml, then: tunewise distill {where}{figures}"
    if rec == "improve_prompting":
        return f"improve task.instructions, add retrieval (data.documents) or tools, then: tunewise decide {where}"
    more = ""
    have = (sufficiency.train_size or 0) if sufficiency else 0
    if sufficiency and sufficiency.status == "ok" and sufficiency.n_needed and sufficiency.n_needed > have:
        more = f"label about {int(sufficiency.n_needed) - have:,} more examples, then "
    return f"{more}tunewise train {where}"


def distilled_figures(project: Project) -> str:
    """What distillation bought here when one has run, else the article's figures, named as such."""
    result = latest_result(project.state_dir)
    if result is None or result.quality_ratio is None:
        return (
            " (expect, from the article until one runs here: 90-95% of the teacher's quality at ~1/20 of the cost "
            "and ~1/5 of the latency)"
        )
    ratio = result.quality_ratio
    measured = [
        f"the student kept {ratio.value:.0%} [{ratio.ci_low:.0%}, {ratio.ci_high:.0%}] of the teacher's {result.metric}"
    ]
    if result.latency_p50_ratio is not None:
        measured.append(f"{result.latency_p50_ratio:.2f}x its median latency")
    if result.cost_ratio is not None:
        measured.append(f"{result.cost_ratio:.2f}x its cost per request")
    return f" (measured here by distillation {result.name}: {', '.join(measured)})"


def undecided(route: Walk, project: Project) -> tuple[str, str, str, str]:
    """An undecided walk's summary, runner-up, why it is only the runner-up, and next command."""
    by_error: dict[str, list[str]] = {}
    for where, error in route.unmeasured.items():
        by_error.setdefault(error, []).append(
            where if where in {n.id for n in TREE} else "the comparison with the target"
        )
    failed = "; ".join(f"{', '.join(places)} unmeasured: {error}" for error, places in by_error.items())
    summary = f"{ACTIONS['undecided'].title}. The answer depends on what the failed probes did not measure — {failed}"
    fallback = route.fallback or "improve_prompting"
    why = (
        "what the answered nodes alone point to, taking every unmeasured node as 'no': "
        "do not act on it before the failed probes run"
    )
    where = f"-c {project.spec_file or project.root}"
    command = (
        f"fix what the failed probes report (tunewise doctor {where} checks the setup), then: tunewise decide {where}"
    )
    return summary, fallback, why, command
