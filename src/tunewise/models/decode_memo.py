"""Greedy decodes a backend already made, reused by constrained decoding when the grammar admits them.

Grammar-constrained greedy decoding takes, at every step, the most likely token *the grammar allows*. When the
unconstrained greedy decode of a prompt ended at eos and the grammar accepts every one of its tokens and then the
eos, the most likely token was allowed at every step, so the constrained decode is that same sequence: it need not
be generated again. ``decide`` runs the best prompt unconstrained and then with the grammar; on the receipts every
3-shot output was schema-valid JSON, and the constrained probe cost as much as the prompt probe for nothing.

A reused completion keeps the latency of the batch it was decoded in (a grammar adds little to it on a CPU).
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import replace

from tunewise.records import Completion

MAX_REMEMBERED = 4096

Admits = Callable[[Sequence[int]], bool]
"""Whether the grammar accepts these tokens followed by the stop token."""


class DecodeMemo:
    """The last :data:`MAX_REMEMBERED` unconstrained greedy decodes that ended at eos, by prompt."""

    def __init__(self) -> None:
        self._decodes: OrderedDict[bytes, tuple[list[int], Completion]] = OrderedDict()
        self._lock = threading.Lock()

    def remember(self, prompt: Sequence[int], tokens: Sequence[int], completion: Completion) -> None:
        """Keep an unconstrained decode (``tokens`` before the eos) that stopped by itself."""
        if completion.finish_reason != "stop":
            return
        key = _key(prompt)
        with self._lock:
            self._decodes[key] = (list(tokens), completion)
            self._decodes.move_to_end(key)
            while len(self._decodes) > MAX_REMEMBERED:
                self._decodes.popitem(last=False)

    def constrained(self, prompt: Sequence[int], max_new_tokens: int, admits: Admits) -> Completion | None:
        """The constrained greedy decode of ``prompt`` when it is the remembered one, else ``None``."""
        with self._lock:
            found = self._decodes.get(_key(prompt))
        if found is None:
            return None
        tokens, completion = found
        if len(tokens) + 1 > max_new_tokens or not admits(tokens):
            return None
        return replace(completion)


def _key(prompt: Sequence[int]) -> bytes:
    return hashlib.blake2b(",".join(map(str, prompt)).encode(), digest_size=16).digest()
