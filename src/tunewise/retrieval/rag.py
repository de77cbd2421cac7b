"""The ``rag`` prompt strategy: the top-k passages retrieved for the input, placed before it in the user turn."""

from __future__ import annotations

from typing import Any

from tunewise.errors import InputError
from tunewise.eval.prompts import PromptContext, register_prompt
from tunewise.records import Example, Message
from tunewise.retrieval.documents import Document
from tunewise.retrieval.index import RetrievalIndex, load_or_build

MAX_PASSAGE_CHARS = 2000
"""Long documents are cut so that k passages fit a small model's context."""
HEADER = "Use the following passages to answer."


def query_text(example: Example) -> str:
    """What is searched for: the last user turn of the example."""
    for message in reversed(example.messages):
        if message["role"] == "user":
            return message["content"]
    return ""


def format_passages(passages: list[Document]) -> str:
    """Numbered passages, each with its title when it has one."""
    blocks = []
    for number, doc in enumerate(passages, start=1):
        text = doc.text if len(doc.text) <= MAX_PASSAGE_CHARS else doc.text[:MAX_PASSAGE_CHARS] + " …"
        title = f" {doc.title}" if doc.title else ""
        blocks.append(f"[{number}]{title}\n{text}")
    return "\n\n".join(blocks)


def rag_messages(example: Example, index: RetrievalIndex, k: int) -> tuple[list[Message], list[str]]:
    """The example's conversation with the ``k`` retrieved passages prepended to its last user turn.

    Returns:
        The messages, and the retrieved document ids (best first) for retrieval-quality metrics.
    """
    passages = [doc for doc, _ in index.search(query_text(example), k)]
    return with_passages(example, passages), [doc.id for doc in passages]


def with_passages(example: Example, passages: list[Document]) -> list[Message]:
    """The example's conversation with ``passages`` prepended to its last user turn."""
    messages = [dict(m) for m in example.messages]
    for message in reversed(messages):
        if message["role"] == "user":
            message["content"] = f"{HEADER}\n\n{format_passages(passages)}\n\n{message['content']}"
            break
    return messages


def project_index(context: PromptContext) -> RetrievalIndex:
    """The candidate's index, built or reloaded once per evaluation and cached in ``context.state``."""
    key = f"rag_index:{context.candidate.retriever}"
    index: Any = context.state.get(key)
    if index is None:
        relative = context.project.spec.data.documents
        if relative is None:
            raise InputError(
                f"candidate {context.candidate.name!r} uses prompt 'rag' but no document collection is declared",
                file=context.project.spec_file,
                field="data.documents",
            )
        index = load_or_build(context.project.path(relative), context.project.state_dir / "indexes", context.candidate.retriever)
        context.state[key] = index
    return index  # type: ignore[no-any-return]


@register_prompt("rag")
def rag(example: Example, context: PromptContext) -> list[Message]:
    """Retrieve ``retrieval_k`` passages from ``data.documents`` with the candidate's retriever and prepend them.

    The retrieved ids are kept in ``context.state["retrieved"][example.id]``.
    """
    messages, ids = rag_messages(example, project_index(context), context.candidate.retrieval_k)
    context.state.setdefault("retrieved", {})[example.id] = ids
    return messages
