"""The optional teacher: a candidate of the spec answers the queued inputs through the eval machinery (its prompt
strategy, its backend, the prediction cache), so its disagreement with the champion marks an input as informative."""

from __future__ import annotations

from typing import Any

from tunewise.config import Project
from tunewise.eval.generate import generate_cached
from tunewise.eval.prompts import PromptContext, get_prompt, prompt_needs_train
from tunewise.eval.runner import select_candidates
from tunewise.examples import load_examples
from tunewise.metrics.normalize import is_empty, values_equal
from tunewise.models.base import Backend, GenerationConfig, close_backend
from tunewise.models.registry import create_backend
from tunewise.records import Example


def teacher_outputs(
    project: Project, teacher: str, examples: list[Example], *, backends: dict[str, Backend] | None = None
) -> list[str]:
    """The teacher candidate's raw output for each example, in order.

    Args:
        backends: ready backends by model name (tests); others are built from the spec.

    Raises:
        InputError: the teacher is not a candidate of the spec.
        BackendError: its model fails.
    """
    if not examples:
        return []
    candidate = select_candidates(project, [teacher])[0]
    given = (backends or {}).get(candidate.model)
    backend = given or create_backend(candidate.model, project.spec.model_spec(candidate.model), project)
    try:
        train = []
        if prompt_needs_train(candidate.prompt) and project.spec.data.train is not None:
            train = load_examples(project, project.split_path("train"))
        context = PromptContext(project, candidate, train)
        strategy = get_prompt(candidate.prompt)
        config = GenerationConfig(
            max_new_tokens=project.spec.eval.max_new_tokens,
            batch_size=project.spec.eval.batch_size,
            json_schema=project.output_schema if candidate.constrained else None,
        )
        conversations = [strategy(example, context) for example in examples]
        cache_dir = project.state_dir / "cache" / "predictions"
        completions, _, _ = generate_cached(backend, conversations, config, cache_dir)
    finally:
        if given is None:
            close_backend(backend)
    return [c.text for c in completions]


def disagrees(champion: Any, teacher: Any) -> bool:
    """Whether two pre-fills (fields or labels, as :func:`tunewise.label.targets.read_output` gives) differ."""
    if isinstance(champion, dict) and isinstance(teacher, dict):
        return any(not _same(champion.get(n), teacher.get(n)) for n in set(champion) | set(teacher))
    return not _same(champion, teacher)


def _same(a: Any, b: Any) -> bool:
    if is_empty(a) or is_empty(b):
        return is_empty(a) and is_empty(b)
    return values_equal(a, b)
