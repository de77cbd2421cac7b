"""Prompt strategies: how an example becomes the conversation a candidate's model sees.

A strategy is a function ``(example, context) -> messages`` registered under a name that candidates refer to
(``prompt: k_shot``): ``zero_shot``, ``k_shot`` (random or similar shots), ``rag`` (passages retrieved from
``data.documents``) and ``k_shot_rag`` (both). Other stages may register their own with :func:`register_prompt`.
"""

from __future__ import annotations

import dataclasses
import functools
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tunewise import embeddings
from tunewise.config import CandidateSpec, Project
from tunewise.errors import InputError
from tunewise.examples import target_text
from tunewise.records import Example, Message
from tunewise.retrieval.index import RetrievalIndex, load_or_build
from tunewise.retrieval.rag import rag_messages

PromptStrategy = Callable[[Example, "PromptContext"], list[Message]]
_STRATEGIES: dict[str, PromptStrategy] = {}


@dataclass
class PromptContext:
    """What a strategy may use besides the example: the project, the candidate, the train split, a cache."""

    project: Project
    candidate: CandidateSpec
    train: list[Example]
    state: dict[str, Any] = field(default_factory=dict)


def register_prompt(name: str) -> Callable[[PromptStrategy], PromptStrategy]:
    def decorate(strategy: PromptStrategy) -> PromptStrategy:
        _STRATEGIES[name] = strategy
        return strategy

    return decorate


def get_prompt(name: str) -> PromptStrategy:
    if name not in _STRATEGIES:
        known = ", ".join(sorted(_STRATEGIES))
        raise KeyError(f"unknown prompt strategy {name!r} (known: {known})")
    return _STRATEGIES[name]


def prompt_needs_train(name: str) -> bool:
    return name != "zero_shot"


def prompt_uses_shots(name: str) -> bool:
    """Whether the strategy puts solved train examples before the input (``k``, ``shot_selection``)."""
    return name in ("k_shot", "k_shot_rag")


def prompt_uses_passages(name: str) -> bool:
    """Whether the strategy adds passages retrieved from ``data.documents`` (``retriever``, ``retrieval_k``)."""
    return name in ("rag", "k_shot_rag")


@register_prompt("zero_shot")
def zero_shot(example: Example, context: PromptContext) -> list[Message]:
    """The example's own conversation: system instructions and the input."""
    return list(example.messages)


@register_prompt("k_shot")
def k_shot(example: Example, context: PromptContext) -> list[Message]:
    """``k`` solved train examples as prior turns, then the input.

    ``shot_selection: random`` uses one seeded set of shots for every example (a fixed prompt);
    ``similar`` picks, per example, the train inputs nearest to it in embedding space.
    """
    k = context.candidate.k
    if context.candidate.shot_selection == "similar":
        shots = _similar_shots(example, context.train, k, context.state)
    else:
        if "random_shots" not in context.state:
            rng = random.Random(context.project.spec.eval.seed)
            context.state["random_shots"] = rng.sample(context.train, min(k + 1, len(context.train)))
        shots = [s for s in context.state["random_shots"] if not _same_input(s, example)][:k]
    system = [m for m in example.messages if m["role"] == "system"]
    turns: list[Message] = []
    for shot in shots:
        turns += [m for m in shot.messages if m["role"] != "system"]
        turns.append({"role": "assistant", "content": target_text(shot)})
    return system + turns + [m for m in example.messages if m["role"] != "system"]


def _last_user_text(example: Example) -> str:
    return next(m["content"] for m in reversed(example.messages) if m["role"] == "user")


@functools.lru_cache(maxsize=4)
def _embed_pool(texts: tuple[str, ...]) -> Any:
    """Embeddings of a shot pool, kept across evaluations: decide's probes evaluate the same train split many times."""

    return embeddings.embed_texts(list(texts))


def _similar_shots(example: Example, train: list[Example], k: int, state: dict[str, Any]) -> list[Example]:
    import numpy as np

    if "train_vectors" not in state:
        state["train_vectors"] = _embed_pool(tuple(_last_user_text(shot) for shot in train))
    query = embeddings.embed_texts([_last_user_text(example)])[0]
    order = np.argsort(-(state["train_vectors"] @ query), kind="stable")
    return [train[i] for i in order if not _same_input(train[i], example)][:k]


def _same_input(shot: Example, example: Example) -> bool:
    """A shot that is the example itself, or its exact twin under another id, would hand over the answer."""
    if shot.id == example.id:
        return True
    return " ".join(_last_user_text(shot).split()).lower() == " ".join(_last_user_text(example).split()).lower()


def _project_index(context: PromptContext) -> RetrievalIndex:
    """The candidate's index, built or reloaded once per evaluation and cached in ``context.state``."""
    key = f"rag_index:{context.candidate.retriever}"
    index: Any = context.state.get(key)
    if index is None:
        relative = context.project.spec.data.documents
        if relative is None:
            raise InputError(
                f"candidate {context.candidate.name!r} uses prompt {context.candidate.prompt!r} but no document"
                " collection is declared",
                file=context.project.spec_file,
                field="data.documents",
            )
        documents = context.project.declared_file(relative, ("data", "documents"))
        index = load_or_build(documents, context.project.state_dir / "indexes", context.candidate.retriever)
        context.state[key] = index
    return index  # type: ignore[no-any-return]


@register_prompt("rag")
def rag(example: Example, context: PromptContext) -> list[Message]:
    """Retrieve ``retrieval_k`` passages from ``data.documents`` with the candidate's retriever and prepend them.

    The retrieved ids are kept in ``context.state["retrieved"][example.id]``.
    """
    messages, ids = rag_messages(example, _project_index(context), context.candidate.retrieval_k)
    context.state.setdefault("retrieved", {})[example.id] = ids
    return messages


@register_prompt("k_shot_rag")
def k_shot_rag(example: Example, context: PromptContext) -> list[Message]:
    """``k_shot``'s shots, then the input with ``rag``'s passages: the shots carry none of their own.

    The passages are retrieved for the input (the last user turn, which ``k_shot`` keeps last).
    """
    return rag(dataclasses.replace(example, messages=k_shot(example, context)), context)
