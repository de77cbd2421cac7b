"""The document collection a RAG candidate retrieves from: a JSONL of ``{"id", "text", "title"?}`` rows."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tunewise.errors import InputError
from tunewise.io.jsonl import read_jsonl


@dataclass(frozen=True)
class Document:
    """One retrievable passage."""

    id: str
    text: str
    title: str = ""

    @property
    def indexed_text(self) -> str:
        """What retrieval sees: the title (when there is one) then the text."""
        return f"{self.title}\n{self.text}" if self.title else self.text


def load_documents(path: str | Path) -> list[Document]:
    """Read and validate a document collection.

    Args:
        path: the JSONL file named by ``data.documents``.

    Returns:
        The documents in file order.

    Raises:
        InputError: missing or empty file, a malformed line, a missing/empty/non-string ``id`` or ``text``,
            a non-string ``title``, a duplicate id (each naming ``file:line: field``).
    """
    path = Path(path)
    documents: list[Document] = []
    seen: dict[str, int] = {}
    for line, row in read_jsonl(path):
        doc_id = row.get("id")
        if isinstance(doc_id, int) and not isinstance(doc_id, bool):
            doc_id = str(doc_id)
        if not isinstance(doc_id, str) or not doc_id.strip():
            raise InputError("every document needs a non-empty string id", file=path, line=line, field="id")
        text = row.get("text")
        if not isinstance(text, str) or not text.strip():
            problem = "missing text" if text is None else "text must be a non-empty string"
            raise InputError(problem, file=path, line=line, field="text")
        title = row.get("title", "")
        if title is None:
            title = ""
        if not isinstance(title, str):
            raise InputError(f"title must be a string, got {type(title).__name__}", file=path, line=line, field="title")
        if doc_id in seen:
            raise InputError(
                f"duplicate id {doc_id!r} (first on line {seen[doc_id]})", file=path, line=line, field="id"
            )
        seen[doc_id] = line
        documents.append(Document(doc_id, text, title))
    if not documents:
        raise InputError("the document collection is empty", file=path, field="data.documents")
    return documents
