"""Retrieval-augmented prompts: the top-k passages retrieved for the input, placed before it in the user turn."""

from __future__ import annotations

from tunewise.records import Example, Message
from tunewise.retrieval.documents import Document
from tunewise.retrieval.index import RetrievalIndex

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
