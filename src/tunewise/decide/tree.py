"""The fine-tuning decision tree, as data: each node a question, the rule that answers it, and its action.

The walk visits the nodes in order; the first node answered ``yes`` decides. Nodes after it are still answered
and reported (their actions become ``also``). When no node fires, a terminal decides: ship the best admissible
prompt when it meets the target, otherwise improve prompting, retrieval and tools first. When a failed probe left a
node on the way (or the terminal) unmeasured, nothing decides: the recommendation is ``undecided``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from tunewise.decide import rules
from tunewise.decide.facts import Facts
from tunewise.decide.record import NodeAnswer


@dataclass(frozen=True)
class Action:
    id: str
    title: str
    fine_tunes: bool


@dataclass(frozen=True)
class Node:
    id: str
    question: str
    rule: str
    """The evidence rule, as reported."""
    action: str
    """The action id recommended when the node answers yes."""
    answer: Callable[[Facts], NodeAnswer]


ACTIONS: dict[str, Action] = {
    a.id: a
    for a in (
        Action("rag", "Use retrieval-augmented generation; do not fine-tune for knowledge", False),
        Action("fine_tune", "Fine-tune (LoRA) on labelled examples", True),
        Action("distill", "Distil the quality model into a smaller, cheaper, faster one", True),
        Action("open_weight_fine_tune", "Self-host an open-weight model, usually fine-tuned", True),
        Action("do_not_fine_tune", "Do not fine-tune: the best prompt already meets the target", False),
        Action("improve_prompting", "Improve prompting, retrieval and tools first", False),
        Action("undecided", "Undecided: the probes failed, fix them and decide again", False),
    )
}

TREE: tuple[Node, ...] = (
    Node(
        "knowledge",
        "Does the model need to know domain facts it lacks?",
        "yes when the best prompt with the retrieved passages beats the same prompt without them by at least "
        "probes.min_gain on the task metric (paired 95% CI excluding 0), or when the retrieved passages make the "
        "reference answers likelier than random passages from the collection by at least probes.min_nll_gain "
        "nats/token (CI excluding 0), or when needs.domain_knowledge: true",
        "rag",
        rules.knowledge,
    ),
    Node(
        "structured_output",
        "Does it need a structured output (schema / label set) it cannot reliably produce?",
        "yes for extract/classify tasks when the best candidate, constrained decoding included, stays below the "
        "threshold (95% CI upper bound under it); validity alone never decides, the task metric does",
        "fine_tune",
        rules.structured_output,
    ),
    Node(
        "smaller_faster",
        "Does it need to be smaller / cheaper / faster at near the current model's quality?",
        "yes when some candidate reaches the quality target but every such candidate misses the p95 latency or "
        "$/1M-token budget",
        "distill",
        rules.smaller_faster,
    ),
    Node(
        "residency",
        "Must it run self-hosted with zero data egress?",
        "yes when targets.self_hosted_only is set and no self-hosted candidate reaches the target (hosted "
        "candidates are inadmissible)",
        "open_weight_fine_tune",
        rules.residency,
    ),
    Node(
        "persona",
        "Must it hold a tone / persona across long conversations?",
        "yes when needs.persona is declared and the best prompt's persona identifiability drops from its turn-1 level "
        "over a long conversation (the persona probe; without dialogue data: the best candidate below the threshold)",
        "fine_tune",
        rules.persona,
    ),
)
NODE_IDS = [node.id for node in TREE]
TERMINAL_OK = "meets_target"
TERMINAL_GAP = "not_good_enough"


@dataclass(frozen=True)
class Walk:
    path: list[str]
    recommendation: str
    deciding: str
    also: list[str]
    provisional: bool
    unmeasured: dict[str, str] = field(default_factory=dict)
    """Nodes on the path (or the terminal) a failed probe left unmeasured -> the error; non-empty when undecided."""
    fallback: str | None = None
    """When undecided: what the answered nodes alone would recommend."""


def walk(answers: dict[str, NodeAnswer], admissible_meets_target: bool, *, terminal_error: str | None = None) -> Walk:
    """Follow the tree over answered nodes.

    Args:
        answers: node id -> answer, one per node of :data:`TREE`.
        admissible_meets_target: whether a candidate allowed by residency and budgets reaches the target.
        terminal_error: why no candidate could be measured (the failed probes), when none was: the terminals
            compare candidates with the target, so they cannot decide then.

    Returns:
        The visited path, the recommended action, the node (or terminal) that decided, the actions of later nodes
        that also fired, and whether the result is provisional: an ``unknown`` answer on the way, or one resting
        on a CI that still includes the threshold. When a node on the path is ``unknown`` because its probe failed
        (an ``error``, not a need left undeclared), or the terminal is reached with nothing measured, the
        recommendation is ``undecided``: every node before the deciding one could have changed the answer.
    """
    route = _follow(answers, admissible_meets_target)
    unmeasured = {n: a.error for n in route.path if (a := answers.get(n)) and a.answer == "unknown" and a.error}
    if route.deciding not in answers and terminal_error:
        unmeasured[route.deciding] = terminal_error
    if not unmeasured:
        return route
    return Walk(route.path, "undecided", next(iter(unmeasured)), [], True, unmeasured, route.recommendation)


def _follow(answers: dict[str, NodeAnswer], admissible_meets_target: bool) -> Walk:
    path: list[str] = []
    provisional = False
    for position, node in enumerate(TREE):
        path.append(node.id)
        answer = answers[node.id]
        if answer.answer == "unknown" or not answer.settled:
            provisional = True
        if answer.answer == "yes":
            later = [n.action for n in TREE[position + 1 :] if answers[n.id].answer == "yes"]
            also = list(dict.fromkeys(a for a in later if a != node.action))
            return Walk(path, node.action, node.id, also, provisional)
    terminal = TERMINAL_OK if admissible_meets_target else TERMINAL_GAP
    path.append(terminal)
    return Walk(path, "do_not_fine_tune" if admissible_meets_target else "improve_prompting", terminal, [], provisional)
