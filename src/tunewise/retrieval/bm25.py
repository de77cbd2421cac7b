"""Lexical retrieval with ``bm25s``, tokenised so that one-character tokens ("store 7") are kept."""

from __future__ import annotations

import json
import re
from pathlib import Path

# bm25s' default pattern is \b\w\w+\b, which drops "7" in "store 7" and the "B" in "vitamin B": keep every word.
TOKEN_PATTERN = r"(?u)\b\w+\b"
_TOKEN_RE = re.compile(TOKEN_PATTERN)


def tokenize(text: str) -> list[str]:
    """Lower-cased word tokens, single characters included."""
    return _TOKEN_RE.findall(text.lower())


class BM25Index:
    """A BM25 index over documents identified by ``ids``."""

    def __init__(self, ids: list[str], retriever: object) -> None:
        self.ids = ids
        self._retriever = retriever

    @classmethod
    def build(cls, ids: list[str], texts: list[str]) -> BM25Index:
        """Index ``texts`` (parallel to ``ids``)."""
        import bm25s

        retriever = bm25s.BM25()
        # A document with no word token would make bm25s fail; a placeholder token keeps positions aligned.
        corpus = [tokenize(text) or ["\u2205"] for text in texts]
        retriever.index(corpus, show_progress=False)
        return cls(list(ids), retriever)

    def search(self, query: str, k: int) -> list[tuple[str, float]]:
        """The ``k`` best documents for ``query`` as ``(id, score)``, best first (empty if no token matches)."""
        tokens = [t for t in tokenize(query) if t in self._vocab]
        if not tokens:
            return []
        k = min(k, len(self.ids))
        indices, scores = self._retriever.retrieve([tokens], k=k, show_progress=False)
        return [(self.ids[int(i)], float(s)) for i, s in zip(indices[0], scores[0], strict=True) if s > 0]

    @property
    def _vocab(self) -> dict[str, int]:
        return self._retriever.vocab_dict  # type: ignore[attr-defined, no-any-return]

    def save(self, directory: Path) -> None:
        """Write the index files into ``directory`` (which must exist)."""
        self._retriever.save(str(directory), show_progress=False)  # type: ignore[attr-defined]
        (directory / "bm25_ids.json").write_text(json.dumps(self.ids), encoding="utf-8")

    @classmethod
    def load(cls, directory: Path) -> BM25Index:
        import bm25s

        retriever = bm25s.BM25.load(str(directory), show_progress=False)
        ids = json.loads((directory / "bm25_ids.json").read_text(encoding="utf-8"))
        return cls(ids, retriever)
