"""The quickstart's small budget, and the best prompt the fine-tune has to beat."""

from __future__ import annotations

from dataclasses import dataclass

from tunewise.config import CandidateSpec, Project, TrainSpec
from tunewise.decide.engine import probe_model, prompt_probes
from tunewise.records import Record


@dataclass(frozen=True)
class TrainBudget(Record):
    """How much the main job trains and evaluates when it is not the full run."""

    dev_examples: int
    train_examples: int
    epochs: float
    full_budget: str | None = None
    """What the full budget measured, in the spec's words (``quickstart.full_budget``)."""

    def describe(self) -> str:
        return (
            f"the quickstart's small budget: LoRA on {self.train_examples} train examples for "
            f"{self.epochs:g} epoch{'s' if self.epochs != 1 else ''}, every evaluation on the first "
            f"{self.dev_examples} dev examples"
        )


def quickstart_budget(project: Project) -> TrainBudget:
    q = project.spec.quickstart
    return TrainBudget(q.dev_examples, q.train_examples, q.epochs, q.full_budget)


def budget_train_spec(spec: TrainSpec, budget: TrainBudget | None, train_steps: int | None) -> TrainSpec:
    """The spec's ``train:`` section with the budget's epochs (``--train-steps`` caps either)."""
    update: dict[str, object] = {}
    if budget is not None:
        update.update(epochs=budget.epochs, max_steps=None)
    if train_steps is not None:
        update["max_steps"] = train_steps
    return spec.model_copy(update=update) if update else spec


def prompt_baselines(project: Project) -> list[CandidateSpec]:
    """The spec's candidates, plus the k-shot prompt with the most similar labelled examples as shots that decide
    probes (often the best prompt there is) when no candidate already is it: the fine-tune is compared with the best
    prompt, not only with the prompts someone wrote into the spec."""
    candidates = list(project.spec.candidates)
    probes = project.spec.decide.probes
    if project.spec.data.train is None or probes.shot_selection != "similar":
        return candidates
    k_shot = prompt_probes(project, probes, probe_model(project, project.spec.decide))[-1]
    settings = ("prompt", "k", "shot_selection", "model")
    if any(all(getattr(c, key) == getattr(k_shot, key) for key in settings) for c in candidates):
        return candidates
    names = {c.name for c in candidates}
    name = f"{probes.k_shot}-shot-similar"
    while name in names:
        name += "-probe"
    return [*candidates, k_shot.model_copy(update={"name": name})]
